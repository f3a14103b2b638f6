"""The `lapse` console script: the garbage collector is held off before anything heavy
is imported (daemon.runtime.collector), pydantic's plugins are turned off, then the
command line runs."""

from __future__ import annotations

import os

from daemon.runtime import collector

# pydantic runs every plugin an installed package declares (an entry point in the group
# "pydantic") inside each validation, Lapse's config and its secrets included, and finds
# them by reading every installed distribution's metadata: 30-40 ms of each command's
# start. Lapse uses none. An operator who wants one sets the variable (empty: all on).
PLUGINS_SETTING = "PYDANTIC_DISABLE_PLUGINS"


def main(args: list[str] | None = None) -> None:
    """Run the command line (daemon.cli.main.main) on `args`, the process's by default."""
    collector.hold()
    os.environ.setdefault(PLUGINS_SETTING, "__all__")
    # Imported here, with the collector held: the command line's imports are most of a
    # command's start.
    from daemon.cli.main import main as run

    run(args)
