"""Output: the only code that writes to stdout/stderr, and the presenters of each task."""
