"""The history of requests and answers: a SQLite database, conversations and follow-ups."""
