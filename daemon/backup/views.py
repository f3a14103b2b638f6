"""A read-only view of a backup row, detached from the database session."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from daemon.backup.manifest import Manifest
from daemon.domain.states import BackupStatus

if TYPE_CHECKING:  # not at run time: the restore's head start reads rows without the ORM
    from daemon.store.models import Backup


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
    def of(cls, row: Backup) -> BackupView:
        """Build the view of the ORM's row `row`."""
        manifest, verification = stored_manifest(row.manifest)
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
            manifest=manifest,
            verification=verification,
        )


def stored_manifest(
    stored: dict[str, Any] | None,
) -> tuple[Manifest | None, Mapping[str, Any] | None]:
    """Return the manifest a backups row's `manifest` column holds and the verification
    record kept beside it (None for either it lacks). Raises KeyError or TypeError for a
    manifest out of shape."""
    if not stored:
        return None, None
    return Manifest.from_dict(stored), stored.get("verification")
