"""What every `lapse` command shares: which config and state database it uses, errors,
and output.

The config is found in this order: `-c FILE`, then $LAPSE_CONFIG, then
/etc/lapse/config.toml when it exists, then the embedded demo. Every command that
reads a config says on stderr which one and which state database it uses
(`lapse status` prints both on stdout as well); stdout stays the command's output.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from click.shell_completion import CompletionItem
from rich.console import Console
from rich.table import Table

from daemon.config import Config, load_config, load_embedded_config
from daemon.config.load import default_data_dir
from daemon.domain.errors import LapseError
from daemon.runtime import collector

if TYPE_CHECKING:
    from daemon.backup.head_start import HeadStart
    from daemon.runtime.app import App, Readers
    from daemon.runtime.restore_parts import RestoreParts

F = TypeVar("F", bound=Callable[..., Any])

console = Console()

# Where a packaged install keeps its config (scripts/build-deb.sh ships it as a conffile).
# $LAPSE_SYSTEM_CONFIG moves it: the tests point it away, so a package installed on the
# same machine (tests/lab/test_deb_package.py does) cannot take the demo's place.
SYSTEM_CONFIG = Path("/etc/lapse/config.toml")


def config_option(function: F) -> F:
    """Add `-c/--config FILE` (default $LAPSE_CONFIG, then /etc/lapse/config.toml, then
    the embedded demo)."""
    return click.option(
        "-c",
        "--config",
        "config_path",
        type=click.Path(path_type=Path, dir_okay=False),
        envvar="LAPSE_CONFIG",
        help="Config file (TOML); default $LAPSE_CONFIG, then /etc/lapse/config.toml if it "
        "exists, else the embedded demo.",
    )(function)


class NotFoundError(click.ClickException):
    """A thing named on the command line (a notice id, say) does not exist: exit 3."""

    exit_code = 3


def resolve_config_path(config_path: Path | None) -> Path | None:
    """Return the config file a command uses: the one given (by -c or $LAPSE_CONFIG),
    else /etc/lapse/config.toml when it exists, else None for the embedded demo."""
    if config_path is not None:
        return config_path
    system = Path(os.environ.get("LAPSE_SYSTEM_CONFIG") or SYSTEM_CONFIG)
    return system if system.is_file() else None


def config_source(config_path: Path | None) -> str:
    """Name the config `config_path` (as resolved) stands for, as commands print it."""
    if config_path is not None:
        return str(config_path)
    return f"embedded demo (data in {default_data_dir()})"


def announce(config_path: Path | None, config: Config, *, uses_state: bool = True) -> None:
    """Say on stderr which config and state database (if any) the command uses."""
    # Imported here: it loads SQLAlchemy, which `lapse restore` loads only once its
    # head start is under way (daemon.runtime.restore_ahead).
    from daemon.runtime.state import describe_state

    state = f"state database {describe_state(config.state)}" if uses_state else "no state database"
    click.echo(f"lapse: config {config_source(config_path)}; {state}", err=True)


def load_announced(config_path: Path | None, *, uses_state: bool = True) -> Config:
    """Resolve and load the config, saying on stderr which it is. Raises ConfigError."""
    path = resolve_config_path(config_path)
    config = read_config(path)
    announce(path, config, uses_state=uses_state)
    return config


def open_app(config_path: Path | None, account: str | None = None) -> App:
    """Resolve and load the config, say which it is, and wire the app over an existing
    state database; with `account`, check first that the database knows it.

    Raises ConfigError, MissingStateError, StateStoreError, SecretError, and
    UnknownAccountError naming the closest ids.
    """
    # Imported here: the whole application is more than some commands need (open_restore).
    from daemon.runtime.app import build_app

    app = build_app(load_announced(config_path), create_db=False)
    collector.settle()
    if account is not None:
        app.readers.accounts.require(account)
    return app


def open_restore(config: Config, account: str, ahead: HeadStart | None = None) -> RestoreParts:
    """Set up what a restore needs over the existing state database `config` names
    (daemon.runtime.restore_parts), with the store and transports of its head start
    `ahead`, if any, after checking that the database knows `account`. Raises what
    `open_app` raises."""
    from daemon.runtime.restore_parts import open_restore_parts

    if ahead is None:
        parts = open_restore_parts(config)
    else:
        parts = open_restore_parts(config, store=ahead.store, transports=ahead.transports)
    collector.settle()
    parts.accounts.require(account)
    return parts


def open_views(config_path: Path | None, account: str | None = None) -> tuple[Config, Readers]:
    """Resolve and load the config, say which it is, and open the read models of an
    existing state database; with `account`, check first that the database knows it.
    Raises what `open_app` raises."""
    from daemon.runtime.app import open_readers

    config = load_announced(config_path)
    readers = open_readers(config.state, create=False)
    collector.settle()
    if account is not None:
        readers.accounts.require(account)
    return config, readers


def account_argument(*, required: bool = True) -> Callable[[F], F]:
    """Add the ACCOUNT argument, completed in the shell from the state database's ids."""
    return click.argument("account", required=required, shell_complete=complete_account)


def complete_account(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """Offer the account ids starting with `incomplete`, read from the state database of
    the config given so far (nothing when it cannot be read: completion never fails)."""
    from daemon.runtime.app import open_readers

    try:
        path = resolve_config_path(ctx.params.get("config_path"))
        readers = open_readers(read_config(path).state, create=False)
        return [CompletionItem(account_id) for account_id in readers.accounts.ids(incomplete)]
    except LapseError:
        return []


def count_option(name: str, default: int, minimum: int, help_text: str) -> Callable[[F], F]:
    """Add a whole-number option `name` (e.g. "--days") refused below `minimum` (exit 2)."""
    return click.option(
        name, default=default, show_default=True, type=click.IntRange(min=minimum), help=help_text
    )


def json_option(function: F) -> F:
    """Add `--json` for machine-readable output."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(
        function
    )


def read_config(config_path: Path | None) -> Config:
    """Load the named config, or the embedded defaults when none is named (call
    `resolve_config_path` first to honour /etc/lapse/config.toml)."""
    return load_config(config_path) if config_path else load_embedded_config()


def amount(value: Decimal) -> str:
    """An amount as JSON and tables carry it: a decimal string, the currency apart."""
    return f"{value.normalize():f}"


def operator() -> str:
    """The actor recorded for a command typed by a person: ops:<user>."""
    user = os.environ.get("SUDO_USER") or os.environ.get("USER") or "unknown"
    return f"ops:{user}"


def parse_when(text: str) -> datetime:
    """Parse a date or datetime given on the command line; naive values are UTC.

    Raises click.BadParameter naming the value.
    """
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            f"expected a date like 2026-12-31 or 2026-12-31T18:00, got {text!r}"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def show_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print rows as a table on the terminal."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(format_value(value) for value in row))
    console.print(table)


def show_json(data: Any) -> None:
    """Print data as JSON (datetimes as ISO 8601, other values as strings)."""
    click.echo(json.dumps(data, indent=2, default=_json_default, ensure_ascii=False))


def format_value(value: Any) -> str:
    """Render one table cell."""
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M UTC")
    return str(value)


def _json_default(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)
