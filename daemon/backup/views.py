"""A read-only view of a backup row, detached from the database session."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from daemon.backup.manifest import Manifest
from daemon.domain.states import BackupStatus


class BackupColumns(Protocol):
    """A backups row's columns, as the ORM's Backup or daemon.backup.sqlite_rows has them."""

    @property
    def id(self) -> str: ...
    @property
    def account_id(self) -> str: ...
    @property
    def store(self) -> str: ...
    @property
    def location(self) -> str: ...
    @property
    def status(self) -> BackupStatus: ...
    @property
    def reason(self) -> str: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def completed_at(self) -> datetime | None: ...
    @property
    def verified_at(self) -> datetime | None: ...
    @property
    def size_bytes(self) -> int | None: ...
    @property
    def manifest(self) -> dict[str, Any] | None: ...
    @property
    def error(self) -> str | None: ...


@dataclass(frozen=True)
class BackupView:
    """What the state database knows about one backup."""

    id: str
    account_id: str
    store: str
    location: str
    status: BackupStatus
    reason: str
    created_at: datetime
    completed_at: datetime | None
    verified_at: datetime | None
    size_bytes: int | None
    error: str | None
    manifest: Manifest | None
    # The last verification's record (when, whether it passed, what each object held).
    verification: Mapping[str, Any] | None = None

    @property
    def verified(self) -> bool:
        """Whether every object was re-read and matched its manifest."""
        return self.status == BackupStatus.VERIFIED

    @classmethod
    def of(cls, row: BackupColumns) -> BackupView:
        """Build the view of `row`."""
        return cls(
            id=row.id,
            account_id=row.account_id,
            store=row.store,
            location=row.location,
            status=row.status,
            reason=row.reason,
            created_at=row.created_at,
            completed_at=row.completed_at,
            verified_at=row.verified_at,
            size_bytes=row.size_bytes,
            error=row.error,
            manifest=Manifest.from_dict(row.manifest) if row.manifest else None,
            verification=(row.manifest or {}).get("verification"),
        )
