"""Arguments turned into jobs, and results turned into answers: one module per kind of question."""

# The video command's question when none is given (the CLI and the Python API share it).
DEFAULT_VIDEO_PROMPT = "Describe this video in detail."
