"""The `lapse` command line (daemon.cli.main); the console script starts in
daemon.cli.entry. Importing the package imports nothing else."""
