"""Which backup a restore takes: one rule, whatever reads the backups' rows.

`lapse restore` picks its backup through BackupService (SQLAlchemy); its head start
picks the same one from a SQLite state database read with the standard library
(daemon.backup.sqlite_rows), before SQLAlchemy is even imported. Both go through
`chosen`, so the head start's guess follows the restore's own rule.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Protocol

from daemon.backup.errors import BackupError
from daemon.backup.views import BackupView


class BackupRows(Protocol):
    """Reads backups from the state database."""

    def get(self, backup_id: str) -> BackupView:
        """Return the backup `backup_id`. Raises UnknownBackupError."""
        ...

    def list(self, account_id: str) -> list[BackupView]:
        """Return the account's backups, newest first."""
        ...


def newest_verified(
    backups: Iterable[BackupView], since: datetime | None = None
) -> BackupView | None:
    """Return the first verified backup of `backups` (newest first) made at or after
    `since`, or None."""
    for backup in backups:
        if backup.verified and (since is None or backup.created_at >= since):
            return backup
    return None


def chosen(rows: BackupRows, account_id: str, backup_id: str) -> BackupView:
    """Return the backup `backup_id` names ('latest': the newest verified) of the account,
    as `lapse restore` picks it.

    Raises UnknownBackupError, or BackupError when there is none or it is another
    account's.
    """
    if backup_id == "latest":
        latest = newest_verified(rows.list(account_id))
        if latest is None:
            raise BackupError(f"{account_id} has no verified backup to restore")
        return latest
    backup = rows.get(backup_id)
    if backup.account_id != account_id:
        raise BackupError(f"backup {backup_id} belongs to another account, not {account_id}")
    return backup
