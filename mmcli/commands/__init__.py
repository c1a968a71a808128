"""One thin module per subcommand: options -> settings -> pipeline -> render."""
