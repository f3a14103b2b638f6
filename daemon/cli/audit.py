"""`lapse audit`: check the hash-chained audit log, and export an account's record."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from sqlalchemy import select

from daemon.cli.common import config_option, json_option, read_config, show_json, show_table
from daemon.domain.errors import UnknownAccountError
from daemon.runtime.app import build_app
from daemon.store.audit import verify_chain
from daemon.store.models import Account, AuditEntry


@click.group()
def audit() -> None:
    """The tamper-evident audit log of every decision and action."""


@audit.command("verify")
@config_option
def verify(config_path: Path | None) -> None:
    """Check every entry of the audit log against the one before; exit 1 naming any
    edited or removed entry."""
    app = build_app(read_config(config_path))
    with app.sessions() as session:
        problems = verify_chain(session)
        count = session.scalar(select(AuditEntry.seq).order_by(AuditEntry.seq.desc())) or 0
    for problem in problems:
        click.echo(problem, err=True)
    if problems:
        click.echo(f"audit log: {len(problems)} problem(s) in {count} entries", err=True)
        sys.exit(1)
    click.echo(f"audit log intact: {count} entries")


@audit.command("export")
@click.argument("account")
@json_option
@config_option
def export(account: str, as_json: bool, config_path: Path | None) -> None:
    """A dated record of everything sent to and done about ACCOUNT, for disputes."""
    app = build_app(read_config(config_path))
    with app.sessions() as session:
        if session.get(Account, account) is None:
            raise UnknownAccountError(f"no account {account!r} in the state database")
        intact = not verify_chain(session)
        rows = session.scalars(
            select(AuditEntry).where(AuditEntry.account_id == account).order_by(AuditEntry.seq)
        ).all()
        entries: list[dict[str, Any]] = [
            {
                "seq": row.seq,
                "at": row.at,
                "kind": row.kind,
                "summary": row.summary,
                "data": row.data,
                "hash": row.hash,
            }
            for row in rows
        ]
    if as_json:
        show_json({"account": account, "chain_intact": intact, "entries": entries})
        return
    show_table(
        f"audit record of {account} (chain {'intact' if intact else 'BROKEN'})",
        ["seq", "when", "kind", "what", "hash"],
        [[e["seq"], e["at"], e["kind"], e["summary"], e["hash"][:12]] for e in entries],
    )


COMMANDS = (audit,)
