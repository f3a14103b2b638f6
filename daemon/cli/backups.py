"""Backup commands for ops: take, list, verify and restore backups by hand."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from daemon.backup.verify import verify_backup
from daemon.backup.views import BackupView
from daemon.cli.common import (
    account_argument,
    config_option,
    json_option,
    open_app,
    operator,
    show_json,
    show_table,
)
from daemon.domain.states import BackupStatus

if TYPE_CHECKING:
    pass


def _summary(backup: BackupView) -> dict[str, Any]:
    return {
        "id": backup.id,
        "account_id": backup.account_id,
        "status": backup.status,
        "reason": backup.reason,
        "created_at": backup.created_at,
        "verified_at": backup.verified_at,
        "size_bytes": backup.size_bytes,
        "objects": len(backup.manifest.objects) if backup.manifest else 0,
        "location": backup.location,
        "error": backup.error,
    }


@click.command()
@account_argument()
@click.option("--no-verify", is_flag=True, help="Skip re-reading the backup after it is taken.")
@json_option
@config_option
def backup(account: str, no_verify: bool, as_json: bool, config_path: Path | None) -> None:
    """Back up ACCOUNT's site files, databases and history now, then verify the backup."""
    app = open_app(config_path, account)
    try:
        made = app.backups.create(account, reason=f"manual {operator()}"[:40], verify=not no_verify)
    finally:
        app.transports.close()
    if as_json:
        show_json(_summary(made))
        return
    click.echo(f"backup {made.id} of {account}: {made.status}, {made.size_bytes} bytes")
    click.echo(f"  at {made.location}")
    for entry in made.manifest.objects if made.manifest else []:
        warnings = f"  (warning: {'; '.join(entry.warnings)})" if entry.warnings else ""
        click.echo(f"  {entry.name}: {entry.size} bytes, sha256 {entry.sha256[:16]}…{warnings}")


@click.command()
@account_argument()
@json_option
@config_option
def backups(account: str, as_json: bool, config_path: Path | None) -> None:
    """List ACCOUNT's backups, newest first, with their verification status."""
    app = open_app(config_path, account)
    rows = [_summary(made) for made in app.backups.list(account)]
    if as_json:
        show_json(rows)
        return
    columns = ["id", "status", "reason", "created_at", "verified_at", "size_bytes", "error"]
    show_table(f"backups of {account}", columns, [[row[c] for c in columns] for row in rows])


@click.command()
@click.argument("backup_id")
@json_option
@config_option
def verify(backup_id: str, as_json: bool, config_path: Path | None) -> None:
    """Re-read every object of BACKUP_ID and check its size and SHA-256 (exit 1 if not)."""
    app = open_app(config_path)
    report = verify_backup(app.backups, backup_id)
    if as_json:
        show_json(
            {
                "backup_id": backup_id,
                "ok": report.ok,
                "objects": [
                    {"name": c.name, "ok": c.ok, "problem": c.problem, "listing": c.listing}
                    for c in report.checks
                ],
            }
        )
    else:
        for check in report.checks:
            click.echo(
                f"  {'ok  ' if check.ok else 'FAIL'} {check.name}"
                + (f": {check.problem}" if check.problem else "")
            )
        verdict = BackupStatus.VERIFIED if report.ok else BackupStatus.CORRUPT.upper()
        click.echo(f"backup {backup_id}: {verdict}")
    if not report.ok:
        sys.exit(1)


COMMANDS = (backup, backups, verify)
