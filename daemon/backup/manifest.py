"""The manifest written with every backup: what it holds and how to check it.

It is stored next to the objects (manifest.json) and in the state database, so a
backup can be understood, verified and restored from either.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

MANIFEST_NAME = "manifest.json"
# The kind of an object holding a control panel's own archive (daemon.backup.panel_archive).
PANEL_ARCHIVE = "panel-archive"
FORMAT = 1


def object_key(account_id: str, backup_id: str, name: str = "") -> str:
    """Return the store key of object `name` of a backup (its prefix when `name` is empty)."""
    return f"{account_id}/{backup_id}/{name}"


@dataclass
class BackupObject:
    """One object of a backup.

    `kind` is 'files', 'database', 'panel-archive' (a file a control panel's own
    backup command wrote, daemon.backup.panel_archive) or 'history'; `source` is the
    directory or database it came from (for a panel archive, the command and its file);
    `compression` is how to read it back ('zstd', 'gzip', 'pigz', 'pg_dump' for
    pg_dump's own format, or 'none'); `format` is a panel archive's ('tar', 'tar.gz',
    'zip'). `warnings` are what the host reported without failing (e.g. files changed
    while read).
    """

    name: str
    kind: str
    source: str
    compression: str
    size: int
    sha256: str
    engine: str | None = None
    host: str | None = None
    format: str | None = None
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BackupObject:
        """Rebuild an entry from its JSON form."""
        return cls(**data)


@dataclass
class Manifest:
    """Everything a backup holds: the account, host(s), objects, tool versions and times."""

    backup_id: str
    account_id: str
    reason: str
    created_at: str
    completed_at: str | None = None
    hosts: list[str] = field(default_factory=list)
    objects: list[BackupObject] = field(default_factory=list)
    tools: dict[str, dict[str, str]] = field(default_factory=dict)
    lapse_version: str = ""
    format: int = FORMAT

    def as_dict(self) -> dict[str, Any]:
        """The manifest as JSON-ready data."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        """Rebuild a manifest from its JSON form. Raises KeyError/TypeError when malformed."""
        fields = {key: value for key, value in data.items() if key != "objects"}
        fields.pop("verification", None)
        fields.pop("proofs", None)  # kept beside the manifest in the state database
        return cls(**fields, objects=[BackupObject.from_dict(entry) for entry in data["objects"]])

    @property
    def size(self) -> int:
        """Total bytes of the backup's objects."""
        return sum(entry.size for entry in self.objects)
