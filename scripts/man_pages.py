"""Write the man pages of `lapse` and each of its commands (lapse.1, lapse-status.1,
lapse-brake-status.1, ...) into a directory, from the commands' own help: `make man`,
and scripts/build-deb.sh for /usr/share/man/man1.

Usage: python scripts/man_pages.py DIRECTORY

The date in the pages is $SOURCE_DATE_EPOCH's when set (reproducible builds), else today.
"""

from __future__ import annotations

import os
import sys
import warnings
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import click
from click_man.core import write_man_pages

from daemon.cli.main import cli, load_command


def eager_group() -> click.Group:
    """The `lapse` group with every command loaded: click-man walks `.commands`, which
    the lazy group leaves empty until a command is asked for."""
    group = click.Group("lapse", help=cli.help, commands={}, context_settings=cli.context_settings)
    for name in cli.list_commands(click.Context(cli)):
        command = load_command(name)
        assert command is not None
        group.add_command(command, name)
    return group


def write_pages(directory: Path) -> list[Path]:
    """Write every page into `directory` (made if missing); return their paths, sorted."""
    directory.mkdir(parents=True, exist_ok=True)
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    moment = datetime.fromtimestamp(int(epoch), UTC) if epoch else datetime.now(UTC)
    with warnings.catch_warnings():
        # click-man 0.6 calls a helper click 8.2 deprecated; the pages are unaffected.
        warnings.simplefilter("ignore", DeprecationWarning)
        write_man_pages(
            "lapse",
            eager_group(),
            version=version("lapse"),
            target_dir=str(directory),
            date=moment.strftime("%Y-%m-%d"),
        )
    return sorted(directory.glob("lapse*.1"))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    for page in write_pages(Path(sys.argv[1])):
        print(page)
