"""The `lapse` command group and the one place errors become a line and an exit code."""

from __future__ import annotations

import sys

import click

from daemon.backup.errors import BackupError
from daemon.backup.stores.base import StoreError as BackupStoreError
from daemon.billing.base import BillingError
from daemon.cli import (
    audit,
    backups,
    brake,
    holds,
    notices,
    planning,
    playbooks,
    process,
    reports,
    views,
)
from daemon.config import ConfigError
from daemon.config.secrets import SecretError
from daemon.lifecycle.engine import UnknownAccountError
from daemon.logs import configure_logging
from daemon.playbooks.templating import TemplateError
from daemon.policy.commands import CommandRefusedError
from daemon.store.db import StoreError
from daemon.transport import CommandError, TransportError

# Errors meant for people: shown as one clear line, exit status 1.
_PEOPLE_ERRORS = (
    ConfigError,
    StoreError,
    BillingError,
    SecretError,
    UnknownAccountError,
    CommandRefusedError,
    BackupError,
    BackupStoreError,
    TransportError,
    CommandError,
    TemplateError,
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lapse")
def cli() -> None:
    """Lapse: a humane, documented lifecycle for hosting accounts that stopped paying."""
    # Logs go to stderr, so `--json` output on stdout stays parseable; `run` reconfigures
    # with the config's level and format.
    configure_logging("info", "auto")


for module in (
    process,
    views,
    planning,
    holds,
    notices,
    backups,
    playbooks,
    audit,
    brake,
    reports,
):
    for command in module.COMMANDS:
        cli.add_command(command)


def main() -> None:
    """Console-script entry point."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except _PEOPLE_ERRORS as error:
        click.echo(f"lapse: {error}", err=True)
        sys.exit(1)
