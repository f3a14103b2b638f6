"""Backup commands for ops: take, list, verify and restore backups by hand."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from daemon.backup.errors import BackupError
from daemon.backup.manifest import PANEL_ARCHIVE
from daemon.backup.restore import RestoreRequest, restore_backup
from daemon.backup.verify import verify_backup
from daemon.backup.views import BackupView
from daemon.cli.common import (
    account_argument,
    config_option,
    json_option,
    open_app,
    open_restore,
    operator,
    show_json,
    show_table,
)
from daemon.cli.progress import RestoreProgress
from daemon.cli.teardown import skip_teardown
from daemon.domain.states import ActionStatus, BackupStatus
from daemon.policy import commands

if TYPE_CHECKING:
    from daemon.runtime.app import App
    from daemon.runtime.restore_parts import RestoreParts


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


@click.command()
@account_argument()
@click.option(
    "--backup",
    "backup_id",
    default="latest",
    show_default=True,
    help="Backup id, or 'latest' for the newest verified backup.",
)
@click.option("--to-host", help="Restore onto this host instead of the one backed up.")
@click.option("--path", help="Put site files into this directory instead of the docroot.")
@click.option("--files-only", is_flag=True, help="Restore site files only.")
@click.option("--databases-only", is_flag=True, help="Restore databases only.")
@click.option("--dry-run", is_flag=True, help="Check the backup and show what would be restored.")
@click.option(
    "--force",
    is_flag=True,
    help="Replace the live docroot of an account that is not deleted (active or suspended).",
)
@click.option(
    "--reactivate",
    is_flag=True,
    help="Then return the account to active (a deleted or suspended account; recorded).",
)
@config_option
def restore(
    account: str,
    backup_id: str,
    to_host: str | None,
    path: str | None,
    files_only: bool,
    databases_only: bool,
    dry_run: bool,
    force: bool,
    reactivate: bool,
    config_path: Path | None,
) -> None:
    """Restore ACCOUNT's site files and databases from a backup.

    Site files are extracted into a fresh staging directory beside the target,
    checked in the same pass (size, SHA-256, no unsafe archive member) and
    compared with the archive (content, mode, owner, time, link target); only
    then is the staging directory swapped in. The live docroot of an account
    that is not deleted is replaced only with --force or --reactivate. Every
    restore is recorded in the account's history with the operator. With
    --reactivate, a deleted account comes back as active and a suspended one is
    unsuspended. A backup that holds a control panel's own archive, restored whole,
    goes through the account's playbook: its restore phase hands the archive to the
    panel's restore command, then restores the site files and databases.
    """
    if files_only and databases_only:
        raise click.UsageError("--files-only and --databases-only exclude each other")
    if reactivate and dry_run:
        raise click.UsageError("--reactivate changes the account; it cannot go with --dry-run")
    parts = open_restore(config_path, account)
    try:
        if reactivate:
            # Built before anything is restored: a part it cannot set up (billing, the
            # notices) refuses the command while the host is still untouched.
            parts.full_app()
        chosen = _chosen_backup(parts, account, backup_id)
        whole = not (to_host or path or files_only or databases_only)
        if (
            whole
            and chosen.manifest
            and any(o.kind == PANEL_ARCHIVE for o in chosen.manifest.objects)
        ):
            _restore_through_playbook(parts.full_app(), account, chosen.id, dry_run, reactivate)
            return
        request = RestoreRequest(
            chosen.id,
            host=to_host,
            path=path,
            files=not databases_only,
            databases=not files_only,
            dry_run=dry_run,
            force=force or reactivate,
            actor=operator(),
        )
        _restore_objects(parts, account, chosen, request, reactivate)
    finally:
        parts.close()
    # Everything it opened is closed: the prompt need not wait for the interpreter's
    # teardown.
    skip_teardown()


def _chosen_backup(parts: RestoreParts, account: str, backup_id: str) -> BackupView:
    """Return the backup `backup_id` names ('latest': the newest verified) of `account`.

    Raises UnknownBackupError, or BackupError when there is none or it is another
    account's."""
    if backup_id == "latest":
        latest = parts.backups.latest_verified(account)
        if latest is None:
            raise BackupError(f"{account} has no verified backup to restore")
        backup_id = latest.id
    elif parts.backups.get(backup_id).account_id != account:
        raise BackupError(f"backup {backup_id} belongs to another account, not {account}")
    return parts.backups.get(backup_id)


def _restore_objects(
    parts: RestoreParts,
    account: str,
    chosen: BackupView,
    request: RestoreRequest,
    reactivate: bool,
) -> None:
    """Restore the site files and databases `request` asks for, say what was restored,
    then with `reactivate` return the account to active and run its queued phases."""
    with RestoreProgress(chosen, request) as progress:
        report = restore_backup(parts.backups, request, progress.advance)
    verb = "would restore" if request.dry_run else "restored"
    for item in report.restored:
        click.echo(
            f"  {verb} {item.name} ({item.bytes} bytes) to {item.host}:{item.target}"
            + (f" in {item.seconds:.1f} s; {item.check}" if item.check else "")
        )
    who = request.actor
    click.echo(f"{account}: {verb} backup {chosen.id} as {who}")
    if reactivate:
        app = parts.full_app()
        decision = app.lifecycle.apply_command(
            account, commands.reactivate, who, reason=f"backup {chosen.id} restored"
        )
        click.echo(f"{account}: {decision.from_state} -> {decision.record.label}")
        for phase, status in app.runner.run_queued(account):
            click.echo(f"{account}: {phase} phase {status}")


def _restore_through_playbook(
    app: App, account: str, backup_id: str, dry_run: bool, reactivate: bool
) -> None:
    """Restore a backup holding a control panel's own archive through the playbook's
    restore phase: the archive goes back onto the host into a fresh root-only directory
    and the panel's restore command takes it, then the site files and databases follow.
    Exits 1 when the phase fails."""
    try:
        if dry_run:
            click.echo(
                f"{account}: backup {backup_id} holds the panel's own archive; it would be "
                f"restored by the playbook's restore phase (lapse playbook show {account} restore)"
            )
            return
        status = app.runner.run_phase(account, "restore", backup_id=backup_id)
        click.echo(f"{account}: restore phase {status} (backup {backup_id}, as {operator()})")
        if status != ActionStatus.DONE:
            sys.exit(1)
        if reactivate:
            decision = app.lifecycle.apply_command(
                account, commands.reactivate, operator(), reason=f"backup {backup_id} restored"
            )
            click.echo(f"{account}: {decision.from_state} -> {decision.record.label}")
            for phase, done in app.runner.run_queued(account):
                click.echo(f"{account}: {phase} phase {done}")
    finally:
        app.transports.close()


COMMANDS = (backup, backups, verify, restore)
