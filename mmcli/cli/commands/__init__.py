"""One thin module per subcommand: arguments in, jobs built by mmcli.tasks, results shown through Output."""
