"""Restoring a panel archive: the object streamed back onto the host into a fresh
root-only directory, checked there (size, SHA-256) against the manifest, then handed
to the panel's own restore command (restorepkg, v-restore-user, pleskrestore), and
the directory removed whatever happened (daemon.backup.panel_archive). The restore is
recorded in the account's history, as every restore is.
"""

from __future__ import annotations

import structlog

from daemon.backup.errors import BackupError
from daemon.backup.manifest import PANEL_ARCHIVE, BackupObject, object_key
from daemon.backup.panel_archive import place_script, refusal
from daemon.backup.service import BackupService
from daemon.backup.stores.base import BackupStoreError
from daemon.backup.views import BackupView
from daemon.domain.states import PROVABLE_BACKUPS, RestoreOutcome
from daemon.store.models import Account, Event
from daemon.transport import CommandError, TransportError

log = structlog.get_logger("lapse.backup")

_CHUNK = 1 << 20


def newest_with_panel_archive(service: BackupService, account_id: str, host: str) -> BackupView:
    """Return the account's newest verified backup holding a panel archive from `host`.

    Raises BackupError when there is none.
    """
    for backup in service.list(account_id):
        if backup.verified and panel_archive_of(backup, host) is not None:
            return backup
    raise BackupError(f"{account_id} has no verified backup holding a panel archive from {host}")


def panel_archive_of(backup: BackupView, host: str) -> BackupObject | None:
    """Return the backup's panel archive taken on `host`, or None."""
    objects = backup.manifest.objects if backup.manifest else []
    return next((o for o in objects if o.kind == PANEL_ARCHIVE and o.host == host), None)


def restore_panel_archive(
    service: BackupService,
    backup_id: str,
    *,
    host: str,
    work_dir: str,
    command: str,
    actor: str,
) -> str:
    """Put the panel archive of backup `backup_id` taken on `host` back onto that host and
    run `command` (bash, values quoted) on it; return the command's output.

    Raises UnknownBackupError; BackupError when the backup is unusable or holds no
    such archive, the bytes that reached the host differ from the manifest, or the
    command fails (the host keeps no copy of the archive either way).
    """
    backup = service.get(backup_id)
    entry = panel_archive_of(backup, host)
    if entry is None or backup.status not in PROVABLE_BACKUPS:
        raise BackupError(
            f"backup {backup_id} is {backup.status} and holds "
            f"{'a' if entry else 'no'} panel archive from {host}; nothing restored"
        )
    label = f"restore of {entry.name} ({entry.source}) on {host}"
    try:
        output = _place(service, backup, entry, host, work_dir, command, label)
    except BaseException as error:
        _record(service, backup, entry, host, actor, error)
        raise
    _record(service, backup, entry, host, actor, None)
    log.info("panel archive restored", backup=backup_id, object=entry.name, host=host)
    return output


def _place(
    service: BackupService,
    backup: BackupView,
    entry: BackupObject,
    host: str,
    work_dir: str,
    command: str,
    label: str,
) -> str:
    script = place_script(work_dir, entry.source, entry.size, entry.sha256, command)
    transport = service.transports.get(host)
    try:
        stream = service.store.open(object_key(backup.account_id, backup.id, entry.name))
    except BackupStoreError as error:
        raise BackupError(f"{label} failed: {error}") from error
    try:
        with transport.start_bulk(script, label) as process:
            try:
                while chunk := stream.read(_CHUNK):
                    process.write(chunk)
                process.close_stdin()
            except TransportError:
                pass  # the host stopped reading: its own reason follows
            output = process.read_all()
            result = process.wait()
    except (TransportError, BackupStoreError) as error:
        raise BackupError(f"{label} failed: {error}") from error
    finally:
        stream.close()
    if result.status != 0:
        reason = refusal(result.stderr) or CommandError(host, label, result.status, result.stderr)
        raise BackupError(f"{label} failed: {reason}")
    return output.decode("utf-8", errors="replace")


def _record(
    service: BackupService,
    backup: BackupView,
    entry: BackupObject,
    host: str,
    actor: str,
    error: BaseException | None,
) -> None:
    """Append the restore to the account's history (and so to the audit log)."""
    outcome = RestoreOutcome.RESTORED if error is None else RestoreOutcome.FAILED
    target = f"{host}:panel archive {entry.source}"
    with service.sessions.begin() as session:
        row = session.get(Account, backup.account_id)
        if row is None:
            return
        session.add(
            Event(
                account_id=backup.account_id,
                at=service.clock(),
                from_state=row.state,
                to_state=row.state,
                reason=f"restore of backup {backup.id} {outcome}: {target}",
                actor=actor,
                details={
                    "backup": backup.id,
                    "targets": [target],
                    "outcome": outcome,
                    "error": None if error is None else (str(error) or type(error).__name__),
                    "force": True,
                },
            )
        )
