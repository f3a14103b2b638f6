"""`lapse audit`: check the hash-chained audit log, and export an account's record."""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from daemon.cli.common import (
    account_argument,
    config_option,
    json_option,
    open_views,
    show_json,
    show_table,
)


@click.group()
def audit() -> None:
    """The tamper-evident audit log of every decision and action."""


@audit.command("verify")
@json_option
@config_option
def verify(as_json: bool, config_path: Path | None) -> None:
    """Check every entry of the audit log against the one before; exit 1 naming any
    edited or removed entry."""
    check = open_views(config_path)[1].audit.check()
    problems, count = check.problems, check.entries
    if as_json:
        show_json({"intact": not problems, "entries": count, "problems": list(problems)})
        if problems:
            sys.exit(1)
        return
    for problem in problems:
        click.echo(problem, err=True)
    if problems:
        click.echo(f"audit log: {len(problems)} problem(s) in {count} entries", err=True)
        sys.exit(1)
    click.echo(f"audit log intact: {count} entries")


@audit.command("export")
@account_argument()
@json_option
@config_option
def export(account: str, as_json: bool, config_path: Path | None) -> None:
    """A dated record of everything sent to and done about ACCOUNT, for disputes."""
    readers = open_views(config_path, account)[1]
    record = readers.audit.of(account)
    intact = record.chain_intact
    # seq, at, kind, summary, data, hash: the keys --json prints, in this order.
    entries: list[dict[str, Any]] = [asdict(row) for row in record.entries]
    if as_json:
        show_json({"account_id": account, "chain_intact": intact, "entries": entries})
        return
    show_table(
        f"audit record of {account} (chain {'intact' if intact else 'BROKEN'})",
        ["seq", "when", "kind", "what", "hash"],
        [[e["seq"], e["at"], e["kind"], e["summary"], e["hash"][:12]] for e in entries],
    )


COMMANDS = (audit,)
