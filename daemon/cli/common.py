"""What every `lapse` command shares: the config option, errors, and output."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from daemon.config import Config, load_config, load_embedded_config

F = TypeVar("F", bound=Callable[..., Any])

console = Console()


def config_option(function: F) -> F:
    """Add `-c/--config FILE` (default $LAPSE_CONFIG, else the embedded defaults)."""
    return click.option(
        "-c",
        "--config",
        "config_path",
        type=click.Path(path_type=Path, dir_okay=False),
        envvar="LAPSE_CONFIG",
        help="Config file (TOML). Without it Lapse runs on its embedded defaults.",
    )(function)


def json_option(function: F) -> F:
    """Add `--json` for machine-readable output."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(
        function
    )


def read_config(config_path: Path | None) -> Config:
    """Load the named config, or the embedded defaults when none is named."""
    return load_config(config_path) if config_path else load_embedded_config()


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
