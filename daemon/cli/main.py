"""The `lapse` command group and the one place errors become a line and an exit code."""

from __future__ import annotations

import importlib
import sys

import click

from daemon.backup.errors import BackupError
from daemon.backup.stores.base import BackupStoreError
from daemon.billing.base import BillingError
from daemon.config import ConfigError
from daemon.config.secrets import SecretError
from daemon.domain.errors import UnknownAccountError
from daemon.playbooks.templating import TemplateError
from daemon.policy.commands import CommandRefusedError
from daemon.runtime.logs import configure_logging
from daemon.store.errors import StateStoreError
from daemon.transport import CommandError, TransportError

# Errors meant for people: shown as one clear line, exit status 1.
_PEOPLE_ERRORS = (
    ConfigError,
    StateStoreError,
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


# The module of each command, imported only when that command runs (or when help lists
# them all): `lapse backup` then loads neither the daemon's scheduler nor its HTTP server.
_COMMAND_MODULES = {
    "run": "process",
    "check-config": "process",
    "config": "configuration",
    "migrate": "process",
    "status": "views",
    "accounts": "views",
    "history": "views",
    "plan": "planning",
    "simulate": "planning",
    "hold": "holds",
    "release": "holds",
    "suspend": "holds",
    "unsuspend": "holds",
    "notices": "notices",
    "backup": "backups",
    "backups": "backups",
    "verify": "backups",
    "restore": "backups",
    "playbook": "playbooks",
    "retry": "playbooks",
    "audit": "audit",
    "brake": "brake",
    "report": "reports",
    "approvals": "approvals",
    "approve": "approvals",
    "reject": "approvals",
    "console": "console",
}


def load_command(name: str) -> click.Command | None:
    """Return the command called `name`, importing its module; None for no such command.

    Raises LookupError when the table above names a module that lacks the command.
    """
    module_name = _COMMAND_MODULES.get(name)
    if module_name is None:
        return None
    commands: tuple[click.Command, ...] = importlib.import_module(
        f"daemon.cli.{module_name}"
    ).COMMANDS
    for command in commands:
        if command.name == name:
            return command
    raise LookupError(f"daemon.cli.{module_name} has no command {name!r}")


class _LazyGroup(click.Group):
    """A command group that imports a command's module only when it is needed."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMAND_MODULES)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return load_command(cmd_name)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lapse")
def cli() -> None:
    """Lapse: a humane, documented lifecycle for hosting accounts that stopped paying."""
    # Logs go to stderr, so `--json` output on stdout stays parseable; `run` reconfigures
    # with the config's level and format.
    configure_logging("info", "auto")


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
