"""The `lapse` console script: the garbage collector is held off before anything heavy
is imported (daemon.runtime.collector), then the command line runs."""

from __future__ import annotations

from daemon.runtime import collector


def main(args: list[str] | None = None) -> None:
    """Run the command line (daemon.cli.main.main) on `args`, the process's by default."""
    collector.hold()
    # Imported here, with the collector held: the command line's imports are most of a
    # command's start.
    from daemon.cli.main import main as run

    run(args)
