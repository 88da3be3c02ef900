"""Command-line interface: ``main.py`` dispatches, one file per subcommand."""
