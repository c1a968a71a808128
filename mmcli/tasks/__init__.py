"""Arguments turned into jobs, and results turned into answers: one module per kind of question."""
