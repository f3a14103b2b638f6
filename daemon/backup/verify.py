"""Verifying a backup: every object re-read from the store and checked against the manifest.

An object passes when its size and SHA-256 match what was recorded while it was
streamed, and its content reads back: a site archive lists completely, a panel
archive lists completely (a tar or tar.gz member by member, a zip from its central
directory with every member's CRC checked), a MariaDB dump decompresses to its end
marker, a pg_dump archive has its header.
Only then is the backup marked verified. Walking a site archive, verification also
digests its files and stores the digests beside it (daemon.backup.member_digests), so
that a restore need not digest them again.
"""

from __future__ import annotations

import json
import tarfile
import zipfile
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog
import zstandard
from sqlalchemy.orm import Session, sessionmaker

from daemon.backup import object_digest
from daemon.backup.archive import HashingReader, decompressed, list_archive, list_zip
from daemon.backup.errors import BackupError
from daemon.backup.manifest import MANIFEST_NAME, PANEL_ARCHIVE, BackupObject, Manifest
from daemon.backup.member_digests import RECORD, MemberDigests, list_with_digests, store_digests
from daemon.backup.stores.base import BackupStore, BackupStoreError
from daemon.backup.views import BackupView
from daemon.domain.clock import Clock
from daemon.domain.states import COMPLETE_BACKUPS, BackupStatus
from daemon.store.models import Backup

log = structlog.get_logger("lapse.backup")

# mysqldump ends a complete dump with this comment; a truncated dump lacks it.
_MARIADB_END = b"-- Dump completed"
_PG_DUMP_MAGIC = b"PGDMP"
_READ_ERRORS = (
    BackupStoreError,
    OSError,
    EOFError,
    tarfile.TarError,
    zstandard.ZstdError,
    ValueError,
    zipfile.BadZipFile,
)


@dataclass
class ObjectCheck:
    """The outcome of checking one object."""

    name: str
    ok: bool
    problem: str | None = None
    listing: dict[str, Any] | None = None
    # A site archive's member digests, when they were asked for (daemon.backup.member_digests).
    digests: MemberDigests | None = None


@dataclass
class VerifyReport:
    """The outcome of verifying a backup: one check per object, and overall."""

    backup_id: str
    checks: list[ObjectCheck] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every object passed."""
        return bool(self.checks) and all(check.ok for check in self.checks)

    def problems(self) -> list[str]:
        """One line per failed object."""
        return [f"{check.name}: {check.problem}" for check in self.checks if not check.ok]


def check_object(
    store: BackupStore,
    key: str,
    entry: BackupObject,
    version: str | None = None,
    *,
    digests: bool = False,
) -> ObjectCheck:
    """Re-read the object `key` (its `version`, where the store keeps versions) and check
    it against its manifest `entry`; with `digests`, a site archive's check also carries
    its member digests (daemon.backup.member_digests) and, in its listing, the BLAKE3 of
    its bytes (daemon.backup.object_digest), made in the same pass."""
    try:
        stream = store.open(key, version)
    except BackupStoreError as error:
        return ObjectCheck(entry.name, False, str(error))
    # A site archive verified for restores is also digested with BLAKE3, which the
    # restore checks its stream against (daemon.backup.object_digest).
    for_restores = entry.kind == "files" and digests
    reader = HashingReader(stream, ("sha256", "blake3") if for_restores else ("sha256",))
    listing = None
    found: MemberDigests | None = None
    try:
        if entry.kind == "files" and digests:
            result, found = list_with_digests(decompressed(reader, entry.compression))
            listing = result.as_dict()
        elif entry.kind == "files":
            result = list_archive(decompressed(reader, entry.compression))
            listing = result.as_dict()
        elif entry.kind == PANEL_ARCHIVE and entry.format == "zip":
            listing = list_zip(reader).as_dict()
        elif entry.kind == PANEL_ARCHIVE:
            # A tar (gzipped or not): listed to its end like a site archive.
            listing = list_archive(decompressed(reader, entry.compression)).as_dict()
        elif entry.kind == "database" and entry.compression == "pg_dump":
            if reader.read(len(_PG_DUMP_MAGIC)) != _PG_DUMP_MAGIC:
                return ObjectCheck(entry.name, False, "not a pg_dump archive (bad header)")
        elif entry.kind == "database" and not _ends_with(
            decompressed(reader, entry.compression), _MARIADB_END
        ):
            return ObjectCheck(entry.name, False, "dump is truncated (no completion line)")
        reader.drain()
    except _READ_ERRORS as error:
        return ObjectCheck(entry.name, False, f"cannot be read back: {error}")
    finally:
        stream.close()
    if reader.size != entry.size:
        return ObjectCheck(
            entry.name, False, f"size {reader.size} differs from the manifest's {entry.size}"
        )
    if reader.sha256 != entry.sha256:
        return ObjectCheck(entry.name, False, "SHA-256 differs from the manifest's")
    if for_restores and listing is not None:
        listing[object_digest.RECORD] = object_digest.record(entry, reader.hexdigest("blake3"))
    return ObjectCheck(entry.name, True, listing=listing, digests=found)


def _ends_with(stream: Any, marker: bytes) -> bool:
    """Read `stream` to its end; return whether its last 4 KiB contain `marker`."""
    tail = b""
    while chunk := stream.read(1 << 20):
        tail = (tail + chunk)[-4096:]
    return marker in tail


class VerifiableBackups(Protocol):
    """What verifying needs of the backup service (daemon.backup.service.BackupService):
    stated here so the service can verify after a backup without an import circle."""

    @property
    def store(self) -> BackupStore:
        """The backup store the objects are read back from."""

    @property
    def clock(self) -> Clock:
        """The clock the verification time is taken from."""

    @property
    def sessions(self) -> sessionmaker[Session]:
        """The state database, where the outcome is recorded."""

    def get(self, backup_id: str) -> BackupView:
        """Return the backup as stored. Raises UnknownBackupError."""


def verify_backup(service: VerifiableBackups, backup_id: str) -> VerifyReport:
    """Verify backup `backup_id` and record the outcome in the state database.

    A pass marks it 'verified' with the time; a failure marks it 'corrupt' with the
    problems. Returns the report. Raises UnknownBackupError, or BackupError for a
    backup that never completed (nothing to verify).
    """
    backup = service.get(backup_id)
    if backup.manifest is None or backup.status not in COMPLETE_BACKUPS:
        raise BackupError(
            f"backup {backup_id} is {backup.status}, not complete: there is nothing to verify"
        )
    manifest = backup.manifest
    report = VerifyReport(backup_id)
    prefix = f"{backup.account_id}/{backup.id}/"
    report.checks.append(check_stored_manifest(service.store, prefix, manifest))
    for entry in manifest.objects:
        check = check_object(service.store, prefix + entry.name, entry, digests=True)
        if check.ok and check.digests is not None and check.listing is not None:
            record = store_digests(service.store, prefix, entry, check.digests)
            if record is not None:
                check.listing[RECORD] = record
        report.checks.append(check)
    _record(service, backup_id, report)
    return report


def check_stored_manifest(store: BackupStore, prefix: str, manifest: Manifest) -> ObjectCheck:
    """Check the manifest in the store still describes the objects the database lists."""
    try:
        stored = Manifest.from_dict(json.loads(store.read(prefix + MANIFEST_NAME)))
    except (BackupStoreError, ValueError, KeyError, TypeError) as error:
        return ObjectCheck(MANIFEST_NAME, False, f"cannot be read back: {error}")
    if stored.objects != manifest.objects:
        return ObjectCheck(MANIFEST_NAME, False, "differs from the one in the state database")
    return ObjectCheck(MANIFEST_NAME, True)


def _record(service: VerifiableBackups, backup_id: str, report: VerifyReport) -> None:
    now = service.clock()
    with service.sessions() as session:
        row = session.get(Backup, backup_id)
        assert row is not None
        manifest = dict(row.manifest or {})
        manifest["verification"] = {
            "at": now.isoformat(),
            "ok": report.ok,
            "objects": {check.name: check.listing or {"ok": check.ok} for check in report.checks},
        }
        row.manifest = manifest
        if report.ok:
            row.status = BackupStatus.VERIFIED
            row.verified_at = now
            row.error = None
        else:
            row.status = BackupStatus.CORRUPT
            row.error = "verification failed: " + "; ".join(report.problems())
        session.commit()
    if report.ok:
        log.info("backup verified", backup=backup_id, objects=len(report.checks))
    else:
        log.error("backup verification failed", backup=backup_id, problems=report.problems())
