"""The digest a restore checks a site archive's stream against: BLAKE3 where verification
recorded one for the very bytes the manifest describes, else the manifest's SHA-256.

Every manifest records each object's SHA-256, made as the backup streamed it into the
store. Checking it again as a restore streams the archive cost about 0.85 s of CPU a
GiB on this machine's cores (a quarter of what the restore's own process spent), in the
one process an on-call engineer waits for. Verification
reads every site archive back anyway: as it checks the SHA-256 it also digests the
same bytes with BLAKE3 (about 0.2 s a GiB) and records that digest in the state
database, beside the SHA-256 it was made with. A restore then hashes the stream with
BLAKE3 alone and compares it with the record. Both are 256-bit cryptographic digests:
a stream with the recorded BLAKE3 is the one verified, whose SHA-256 was the
manifest's.

Trust: the record is used only when the backup's verification passed and the record
names the very SHA-256 the manifest records for this object now, and holds a digest of
the right shape. Otherwise (a backup verified before this record existed, a manifest
changed since, a record out of shape) the restore checks the SHA-256 as before.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from daemon.backup.manifest import BackupObject

# Where a verification record of a site archive keeps its BLAKE3 (daemon.backup.verify).
RECORD = "blake3"
_HEX = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class StreamDigest:
    """What a stream is checked against: the digest's name (in daemon.backup.archive.DIGESTS),
    the hex digest expected, and how an error names it and where it was recorded."""

    name: str
    value: str
    label: str
    source: str


def record(entry: BackupObject, blake3_hex: str) -> dict[str, str]:
    """Return the record of `entry`'s BLAKE3 (`blake3_hex`, of the bytes whose SHA-256
    matched the manifest's) that a verification record keeps."""
    return {"digest": blake3_hex, "archive_sha256": entry.sha256}


def verified_record(
    verification: Mapping[str, Any] | None, entry: BackupObject, key: str
) -> Mapping[str, Any] | None:
    """Return what a backup's passed `verification` recorded under `key` for object
    `entry`, or None when it did not pass or recorded nothing there."""
    if not verification or verification.get("ok") is not True:
        return None
    objects = verification.get("objects")
    listing = objects.get(entry.name) if isinstance(objects, dict) else None
    found = listing.get(key) if isinstance(listing, dict) else None
    return found if isinstance(found, dict) else None


def expected(verification: Mapping[str, Any] | None, entry: BackupObject) -> StreamDigest:
    """Return the digest a restore checks `entry`'s stream against: the BLAKE3 its backup's
    `verification` recorded for the manifest's very SHA-256, or else that SHA-256."""
    found = verified_record(verification, entry, RECORD)
    digest = found.get("digest") if found is not None else None
    if (
        found is not None
        and found.get("archive_sha256") == entry.sha256
        and isinstance(digest, str)
        and _HEX.fullmatch(digest)
    ):
        return StreamDigest("blake3", digest, "BLAKE3", "its verification recorded")
    return StreamDigest("sha256", entry.sha256, "SHA-256", "its manifest records")
