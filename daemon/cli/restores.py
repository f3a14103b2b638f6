"""`lapse restore`: put a backup's site files and databases back, by hand.

It lives apart from the other backup commands, and imports at the top only what its
head start needs (daemon.runtime.restore_ahead): the state database and the restore's
machinery load while the host's session and the store's answer are on their way.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from daemon.cli.common import (
    account_argument,
    announce,
    config_option,
    open_restore,
    operator,
    read_config,
    resolve_config_path,
)
from daemon.cli.teardown import skip_teardown
from daemon.runtime.restore_ahead import start_ahead

if TYPE_CHECKING:
    from daemon.backup.head_start import HeadStart
    from daemon.backup.restore import RestoreRequest
    from daemon.backup.views import BackupView
    from daemon.config import Config
    from daemon.runtime.app import App
    from daemon.runtime.restore_parts import RestoreParts


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
    whole = not (to_host or path or files_only or databases_only)
    source = resolve_config_path(config_path)
    config = read_config(source)
    # Begun before the rest of the command is even imported (daemon.runtime.restore_ahead).
    ahead = (
        None
        if dry_run or databases_only
        else start_ahead(config, account, backup_id, to_host, whole)
    )
    try:
        announce(source, config)
        # Imported here, once the head start is under way: it loads the state database's
        # models.
        from daemon.backup.restore import RestoreRequest

        request = RestoreRequest(
            backup_id,  # 'latest' until the backup is chosen
            host=to_host,
            path=path,
            files=not databases_only,
            databases=not files_only,
            dry_run=dry_run,
            force=force or reactivate,
            actor=operator(),
        )
        _restore(config, account, request, ahead, whole, reactivate)
    finally:
        if ahead is not None:
            ahead.close()
    # Everything it opened is closed: the prompt need not wait for the interpreter's
    # teardown.
    skip_teardown()


def _restore(
    config: Config,
    account: str,
    request: RestoreRequest,
    ahead: HeadStart | None,
    whole: bool,
    reactivate: bool,
) -> None:
    """Choose the backup `request` names and restore it: through the playbook for a control
    panel's own archive restored `whole`, else its site files and databases."""
    from daemon.backup.manifest import PANEL_ARCHIVE

    parts = open_restore(config, account, ahead)
    try:
        if reactivate:
            # Built before anything is restored: a part it cannot set up (billing, the
            # notices) refuses the command while the host is still untouched.
            parts.full_app()
        chosen = parts.backups.chosen(account, request.backup_id)
        if (
            whole
            and chosen.manifest
            and any(o.kind == PANEL_ARCHIVE for o in chosen.manifest.objects)
        ):
            _restore_through_playbook(
                parts.full_app(), account, chosen.id, request.dry_run, reactivate
            )
            return
        request = dataclasses.replace(request, backup_id=chosen.id)
        _restore_objects(parts, account, chosen, request, reactivate, ahead)
    finally:
        parts.close()


def _restore_objects(
    parts: RestoreParts,
    account: str,
    chosen: BackupView,
    request: RestoreRequest,
    reactivate: bool,
    ahead: HeadStart | None,
) -> None:
    """Restore the site files and databases `request` asks for, say what was restored,
    then with `reactivate` return the account to active and run its queued phases."""
    from daemon.backup.restore import restore_backup
    from daemon.cli.progress import RestoreProgress
    from daemon.policy import commands

    with RestoreProgress(chosen, request) as progress:
        report = restore_backup(parts.backups, request, progress.advance, ahead)
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
    from daemon.domain.states import ActionStatus
    from daemon.policy import commands

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


COMMANDS = (restore,)
