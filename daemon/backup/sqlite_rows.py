"""The backups table of a SQLite state database, read with the standard library alone.

For `lapse restore`'s head start (daemon.runtime.restore_ahead): its question (which
archive first, onto which host) is a read of two or three rows, and SQLAlchemy with
the ORM's models takes about half a second to import before it can ask it. Read
here, the answer is in within a few milliseconds of the command reading its config.
The rows become the same BackupView the ORM's rows become (a test holds the two
readers to the same views); the restore still reads everything again through
SQLAlchemy and takes nothing from the head start that does not match what it read.

Only a plain `sqlite:///PATH` URL is read here (`sqlite_file`); any other form, and
every other database, goes through SQLAlchemy, which knows them all.
"""

from __future__ import annotations

import builtins
import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from daemon.backup.errors import UnknownBackupError
from daemon.backup.views import BackupView, stored_manifest
from daemon.domain.states import BackupStatus
from daemon.store.json_columns import loads

_PLAIN_SQLITE = "sqlite:///"
# A head start that waits longer than this for a lock is no head start.
_BUSY_SECONDS = 1.0
# The columns in the order _view takes them; the order of `list` is BackupService.list's.
_BY_ID = (
    "SELECT id, account_id, store, location, status, reason, created_at, completed_at, "
    "verified_at, size_bytes, manifest, error FROM backups WHERE id = ?"
)
_OF_ACCOUNT = (
    "SELECT id, account_id, store, location, status, reason, created_at, completed_at, "
    "verified_at, size_bytes, manifest, error FROM backups WHERE account_id = ? "
    "ORDER BY created_at DESC, id DESC"
)


def sqlite_file(url: str) -> Path | None:
    """Return the file a state database URL of the plain form `sqlite:///PATH` names (a
    relative PATH from the working directory, as SQLAlchemy takes it), or None for any
    other URL: another database, a query string, an escaped character, memory."""
    if not url.startswith(_PLAIN_SQLITE):
        return None
    path = url.removeprefix(_PLAIN_SQLITE)
    if not path or path == ":memory:" or any(mark in path for mark in "?%#"):
        return None
    return Path(path).absolute()


def _view(values: tuple[Any, ...]) -> BackupView:
    """The view of a row as _BY_ID and _OF_ACCOUNT select it, its columns converted as the
    ORM's column types convert them. Raises ValueError for a status or a time out of
    shape, ValueError, KeyError or TypeError for such a manifest."""
    id_, account, store, location, status, reason, created, *rest = values
    completed, verified, size, stored, error = rest
    manifest, verification = stored_manifest(loads(stored) if stored is not None else None)
    return BackupView(
        id=id_,
        account_id=account,
        store=store,
        location=location,
        status=BackupStatus(status),
        reason=reason,
        created_at=_utc(created),
        completed_at=_utc(completed) if completed is not None else None,
        verified_at=_utc(verified) if verified is not None else None,
        size_bytes=size,
        error=error,
        manifest=manifest,
        verification=verification,
    )


def _utc(text: str) -> datetime:
    """A time as the state database keeps it in SQLite (naive UTC, daemon.store.types)."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class SqliteBackups:
    """The backups of SQLite state database `path`, opened read-only for each question
    (daemon.backup.choice.BackupRows). Its methods raise sqlite3.Error for a file that is
    not there or not a state database, and ValueError, KeyError or TypeError for a row
    out of shape (its status, a time, its manifest)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def get(self, backup_id: str) -> BackupView:
        """Return the backup `backup_id`. Raises UnknownBackupError."""
        rows = self._select(_BY_ID, backup_id)
        if not rows:
            raise UnknownBackupError(f"no backup {backup_id!r} in the state database")
        return rows[0]

    def list(self, account_id: str) -> list[BackupView]:
        """Return the account's backups, newest first (BackupService.list's order)."""
        return self._select(_OF_ACCOUNT, account_id)

    def _select(self, query: str, value: str) -> builtins.list[BackupView]:
        # Read-only: a missing file is an error, never a new empty database.
        uri = self.path.as_uri() + "?mode=ro"
        with closing(sqlite3.connect(uri, uri=True, timeout=_BUSY_SECONDS)) as connection:
            rows = connection.execute(query, (value,)).fetchall()
        return [_view(row) for row in rows]
