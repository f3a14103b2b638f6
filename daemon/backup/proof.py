"""Proving a backup at the moment a deletion relies on it (invariant 1).

A proof is made right then, never taken from the past: every object of the backup
is re-read from the store (the very version that is then protected, where the
store keeps versions) and its size and SHA-256 matched against the manifest in
the state database; the manifest in the store must still describe the same
objects; every site archive is listed to its end, and none may hold a member a
restore would refuse. A `verified` flag written earlier counts for nothing.

A backup that fails is marked 'corrupt' with the reasons (`lapse backups` shows
it). A backup that passes is protected against deletion and overwrite until the
given time where the store can (S3 Object Lock, read-only files in a directory),
with the member digest lists verification stored beside its site archives, and the
proof is kept beside its manifest in the state database, so the deletion
record can name it after a restart.

Errors (all BackupError):
    ProofError       an object is missing, changed, unreadable or unsafe to restore
    ProtectionError  the store refused to protect the proven backup
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import select

from daemon.backup import member_digests
from daemon.backup.errors import BackupError
from daemon.backup.manifest import MANIFEST_NAME, Manifest
from daemon.backup.stores.base import BackupStoreError
from daemon.backup.verify import check_object, check_stored_manifest
from daemon.backup.views import BackupView
from daemon.domain.states import PROVABLE_BACKUPS, BackupStatus
from daemon.store.models import Backup

if TYPE_CHECKING:
    from daemon.backup.service import BackupService

log = structlog.get_logger("lapse.backup")


class ProofError(BackupError):
    """A backup failed its proof: an object is missing, changed, unreadable, or holds a
    member a restore would refuse. The message names the backup and every problem."""


class ProtectionError(BackupError):
    """The store refused to protect a proven backup against deletion and overwrite."""


@dataclass(frozen=True)
class Proof:
    """A backup proven at `proven_at`: `digest` is the SHA-256 of its manifest's object
    list (names, sizes, SHA-256s), `protected_until` when the store holds it locked
    (None: the store could not protect it)."""

    backup_id: str
    proven_at: datetime
    digest: str
    objects: int
    bytes: int
    protected_until: datetime | None
    action_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """The proof as JSON-ready data."""
        return {
            "backup": self.backup_id,
            "proven_at": self.proven_at.isoformat(),
            "digest": self.digest,
            "objects": self.objects,
            "bytes": self.bytes,
            "protected_until": self.protected_until.isoformat() if self.protected_until else None,
            "action": self.action_id,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Proof:
        """Rebuild a proof from `as_dict`'s form. Raises KeyError/ValueError when malformed."""
        until = data["protected_until"]
        return cls(
            backup_id=data["backup"],
            proven_at=datetime.fromisoformat(data["proven_at"]),
            digest=data["digest"],
            objects=data["objects"],
            bytes=data["bytes"],
            protected_until=datetime.fromisoformat(until) if until else None,
            action_id=data.get("action"),
        )


def manifest_digest(manifest: Manifest) -> str:
    """Return the SHA-256 (hex) of the backup's identity and object list: what was proven."""
    described = {
        "backup": manifest.backup_id,
        "account": manifest.account_id,
        "objects": [[entry.name, entry.size, entry.sha256] for entry in manifest.objects],
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()


def prove_backup(
    service: BackupService,
    backup_id: str,
    *,
    protect_until: datetime | None,
    action_id: int | None = None,
) -> Proof:
    """Prove backup `backup_id` now, protect it until `protect_until` (None: leave it
    as it is) and record the proof; return it.

    Raises UnknownBackupError; ProofError (after marking the backup 'corrupt') when
    anything fails; ProtectionError when the store refuses the protection.
    """
    backup = service.get(backup_id)
    now = service.clock()
    if backup.manifest is None or backup.status not in PROVABLE_BACKUPS:
        found = f" ({backup.error})" if backup.error else ""
        raise ProofError(
            f"backup {backup_id} of {backup.account_id} is {backup.status}{found}: "
            "only a completed backup that never failed a check can be proven"
        )
    manifest = backup.manifest
    prefix = f"{backup.account_id}/{backup.id}/"
    versions, problems = _check_objects(service, prefix, manifest)
    if problems:
        _mark_corrupt(service, backup_id, now, problems)
        raise ProofError(
            f"backup {backup_id} of {backup.account_id} failed its proof at "
            f"{now.isoformat()}: " + "; ".join(problems)
        )
    versions.update(_member_digest_lists(service, prefix, backup))
    protected = protect_until is not None and _protect(service, prefix, versions, protect_until)
    proof = Proof(
        backup_id=backup_id,
        proven_at=now,
        digest=manifest_digest(manifest),
        objects=len(manifest.objects),
        bytes=manifest.size,
        protected_until=protect_until if protected else None,
        action_id=action_id,
    )
    _record(service, proof)
    log.info("backup proven", backup=backup_id, digest=proof.digest, protected=protected)
    return proof


def _check_objects(
    service: BackupService, prefix: str, manifest: Manifest
) -> tuple[dict[str, str | None], list[str]]:
    """Re-read and check every object; return the versions read (by object name, the
    manifest's included) and one line per problem."""
    versions: dict[str, str | None] = {}
    problems: list[str] = []
    stored = check_stored_manifest(service.store, prefix, manifest)
    if not stored.ok:
        problems.append(f"{MANIFEST_NAME}: {stored.problem}")
    for name in (MANIFEST_NAME, *(entry.name for entry in manifest.objects)):
        try:
            versions[name] = service.store.pin(prefix + name)
        except BackupStoreError as error:
            problems.append(f"{name}: {error}")
    for entry in manifest.objects:
        if entry.name not in versions:
            continue  # missing: already reported
        check = check_object(service.store, prefix + entry.name, entry, versions[entry.name])
        unsafe = (check.listing or {}).get("unsafe") or []
        if not check.ok:
            problems.append(f"{entry.name}: {check.problem}")
        elif unsafe:
            problems.append(
                f"{entry.name}: holds members a restore refuses: "
                + "; ".join(str(item) for item in unsafe)
            )
    return versions, problems


def _member_digest_lists(
    service: BackupService, prefix: str, backup: BackupView
) -> dict[str, str | None]:
    """The versions of the member digest lists verification recorded for the backup's site
    archives (daemon.backup.member_digests), to be protected with the objects: a list is
    no proof of anything, but a relied-on backup stays whole. One gone from the store is
    left out (a restore then digests the files itself)."""
    assert backup.manifest is not None
    versions: dict[str, str | None] = {}
    for entry in backup.manifest.objects:
        if member_digests.recorded(backup.verification, entry) is None:
            continue
        name = member_digests.list_name(entry)
        try:
            versions[name] = service.store.pin(prefix + name)
        except BackupStoreError as error:
            log.warning("member digests not protected", object=entry.name, error=str(error))
    return versions


def _protect(
    service: BackupService, prefix: str, versions: dict[str, str | None], until: datetime
) -> bool:
    """Protect every object read; return whether the store protected them all.

    Raises ProtectionError when it refuses.
    """
    try:
        # A list, not a generator: every object is protected even after one the
        # store could not protect.
        done = [service.store.protect(prefix + name, ver, until) for name, ver in versions.items()]
    except BackupStoreError as error:
        raise ProtectionError(f"the proven backup could not be protected: {error}") from error
    return all(done)


def _record(service: BackupService, proof: Proof) -> None:
    """Keep the proof beside the manifest; a proven backup is also verified, as of now."""
    with service.sessions() as session:
        row = session.get(Backup, proof.backup_id)
        assert row is not None
        manifest = dict(row.manifest or {})
        manifest["proofs"] = [*manifest.get("proofs", []), proof.as_dict()]
        row.manifest = manifest  # a new dict: the JSON column sees the change
        row.status, row.verified_at, row.error = BackupStatus.VERIFIED, proof.proven_at, None
        session.commit()


def _mark_corrupt(
    service: BackupService, backup_id: str, at: datetime, problems: list[str]
) -> None:
    with service.sessions() as session:
        row = session.get(Backup, backup_id)
        assert row is not None
        row.status = BackupStatus.CORRUPT
        row.error = f"proof at {at.isoformat()} failed: " + "; ".join(problems)
        session.commit()
    log.error("backup failed its proof", backup=backup_id, problems=problems)


def proof_for_action(service: BackupService, account_id: str, action_id: int) -> Proof | None:
    """Return the newest proof made for the deletion `action_id` of the account, or None."""
    with service.sessions() as session:
        manifests = session.scalars(
            select(Backup.manifest).where(Backup.account_id == account_id)
        ).all()
    proofs = [
        Proof.from_dict(entry)
        for manifest in manifests
        for entry in (manifest or {}).get("proofs", [])
        if entry.get("action") == action_id
    ]
    return max(proofs, key=lambda proof: proof.proven_at, default=None)
