"""The `lapse` command line."""

from daemon.cli.main import main

__all__ = ["main"]
