"""Turning local files, URLs and streams into media the model can take."""
