"""The `lapse` command group and the one place errors become a line and an exit code."""

from __future__ import annotations

import importlib
import sys
from typing import NoReturn

import click

from daemon.backup.errors import UnknownBackupError
from daemon.cli.common import NotFoundError
from daemon.cli.teardown import end_now_if_asked
from daemon.config import ConfigError
from daemon.domain.errors import LapseError, UnknownAccountError
from daemon.runtime.logs import configure_logging

# The exit statuses, documented in docs/cli.md.
EXIT_OK = 0
EXIT_FAILED = 1  # what was asked failed: a config, a database, a host, a check
EXIT_USAGE = 2  # the command line itself: an unknown command or option, a bad value
EXIT_NOT_FOUND = 3  # no such account, backup or notice
EXIT_INTERRUPTED = 130

# Errors that say a thing asked for does not exist.
_NOT_FOUND = (UnknownAccountError, UnknownBackupError, NotFoundError)


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
    "restore": "restores",
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

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """Find the command; an unknown name is refused with the closest known ones
        (the commands are not loaded, so click cannot offer them itself)."""
        name = args[0]
        if load_command(name) is None and not ctx.resilient_parsing and not name.startswith("-"):
            raise click.exceptions.NoSuchCommand(
                name, possibilities=self.list_commands(ctx), ctx=ctx
            )
        return super().resolve_command(ctx, args)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lapse")
def cli() -> None:
    """Lapse: a humane, documented lifecycle for hosting accounts that stopped paying."""
    # Logs go to stderr, so `--json` output on stdout stays parseable; `run` reconfigures
    # with the config's level and format.
    configure_logging("info", "auto")


def main(args: list[str] | None = None) -> None:
    """Console-script entry point (`args` default to the process's): every error is one
    `lapse: error: ...` line on stderr (a usage error after the command's usage) and an
    exit status from the table above. Always ends by raising SystemExit, or, after a
    command that succeeded and asked for it (daemon.cli.teardown), by ending the
    process at once."""
    try:
        cli.main(args, prog_name="lapse", standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(EXIT_INTERRUPTED)
    except click.exceptions.NoArgsIsHelpError as error:
        error.show()  # a group given no command: its help, as click shows it
        sys.exit(EXIT_USAGE)
    except click.UsageError as error:
        if error.ctx is not None:
            click.echo(error.ctx.get_usage(), err=True)
        _fail(error.format_message(), EXIT_USAGE)
    except click.ClickException as error:
        not_found = isinstance(error, _NOT_FOUND)
        _fail(error.format_message(), EXIT_NOT_FOUND if not_found else EXIT_FAILED)
    except ConfigError as error:
        _fail("\n".join(error.problems), EXIT_FAILED)
    except _NOT_FOUND as error:
        _fail(str(error), EXIT_NOT_FOUND)
    except LapseError as error:
        _fail(str(error), EXIT_FAILED)
    end_now_if_asked(EXIT_OK)
    sys.exit(EXIT_OK)


def fail_line(message: str) -> str:
    """Return `message` as Lapse's error lines: each line `lapse: error: ...`."""
    return "\n".join(f"lapse: error: {line}" for line in message.splitlines() or [""])


def _fail(message: str, status: int) -> NoReturn:
    click.echo(fail_line(message), err=True)
    sys.exit(status)
