"""The command line: Typer, the options, the commands and everything that prints."""
