"""A site archive's member digests: made once by verification, stored beside the archive.

Verification reads every site archive back from the store and walks it anyway
(daemon.backup.verify). Walking it, it also digests each regular file's content
with BLAKE3 and stores the digests beside the archive, as `NAME.members.json.zst`;
the state database records that object's size and SHA-256 and the archive SHA-256
the list describes (in the verification record of the archive). A restore onto a
host that digests with BLAKE3 (b3sum) then takes each file's expected digest from
the list instead of digesting the archive's content again as it streams: the
digesting is done when a backup is verified, which nobody waits for, not in the
restore an on-call engineer waits for (about 0.8 s of CPU a GiB here).

Trust: a list is used only when the object read back has exactly the recorded size
and SHA-256, and it describes the archive SHA-256 the manifest records. The restore
still hashes the archive stream and checks it against that SHA-256 (or the BLAKE3
verification recorded beside it, daemon.backup.object_digest) before anything is
compared or swapped, so a list can only describe the very bytes verified. With
no record, a list changed or gone from the store, or a list of another archive, the
restore digests every file as it streams, as it does without a list, and says why in
a warning.
"""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
from collections.abc import Callable, Mapping
from typing import Any, BinaryIO

import blake3
import structlog
import zstandard

from daemon.backup import tar_walk
from daemon.backup.archive import ArchiveListing, member_key
from daemon.backup.manifest import BackupObject
from daemon.backup.object_digest import verified_record
from daemon.backup.stores.base import BackupStore, BackupStoreError
from daemon.domain.errors import LapseError

log = structlog.get_logger("lapse.backup")

# The digest the lists hold: the one b3sum prints, which a host's extract script announces.
DIGEST = "blake3"
NEW_DIGEST: tar_walk.NewDigest = blake3.blake3
# The list's object name is the archive's with this after it.
SUFFIX = ".members.json.zst"
# Where a verification record of an archive names its list (daemon.backup.verify).
RECORD = "member_digests"
_FORMAT = 1
_HEX = re.compile(r"[0-9a-f]{64}")

# Each regular file's (and hard link's) key (daemon.backup.archive.member_key) to the
# hex digest of its content.
MemberDigests = dict[bytes, str]


class MemberDigestsError(LapseError, ValueError):
    """A stored list of member digests could not be read."""


def list_with_digests(stream: BinaryIO) -> tuple[ArchiveListing, MemberDigests]:
    """Read a tar stream to its end; return its listing (as daemon.backup.archive.list_archive
    makes it) and the BLAKE3 digest of every regular file's content, by key; a hard link
    has its target's.

    Raises tarfile.TarError (or a decompression error) when the stream is not a
    complete, readable archive.
    """
    listing = ArchiveListing()
    digests: MemberDigests = {}

    def visit(member: tarfile.TarInfo, digest: Callable[[], str]) -> None:
        listing.add(member)
        if member.isreg():
            digests[member_key(member.name)] = digest()
        elif member.islnk():
            linked = digests.get(member_key(member.linkname))
            if linked is not None:
                digests[member_key(member.name)] = linked

    tar_walk.walk(stream, visit, NEW_DIGEST)
    return listing, digests


def list_name(entry: BackupObject) -> str:
    """The name of site archive `entry`'s list of member digests, beside it."""
    return entry.name + SUFFIX


def encode(digests: MemberDigests, archive_sha256: str) -> bytes:
    """Return the stored form of `digests`, the list of the archive whose SHA-256 is
    `archive_sha256`: zstd-compressed JSON, each name's bytes as Python decodes them with
    surrogateescape (a name that is not UTF-8 survives as \\udcXX escapes)."""
    files = {name.decode("utf-8", "surrogateescape"): value for name, value in digests.items()}
    document = {
        "format": _FORMAT,
        "digest": DIGEST,
        "archive_sha256": archive_sha256,
        "files": files,
    }
    text = json.dumps(document, separators=(",", ":"), ensure_ascii=True)
    return zstandard.ZstdCompressor(level=3).compress(text.encode("ascii"))


def decode(data: bytes, archive_sha256: str) -> MemberDigests:
    """Return the digests stored in `data` (from `encode`), which must be the list of the
    archive whose SHA-256 is `archive_sha256`.

    Raises MemberDigestsError naming what is wrong.
    """
    try:
        document = json.loads(zstandard.ZstdDecompressor().decompress(data))
    except (zstandard.ZstdError, ValueError) as error:
        raise MemberDigestsError(f"not a list of member digests: {error}") from error
    if not isinstance(document, dict) or document.get("format") != _FORMAT:
        raise MemberDigestsError(f"not a list of member digests in format {_FORMAT}")
    if document.get("digest") != DIGEST:
        raise MemberDigestsError(f"holds {document.get('digest')!r} digests, not {DIGEST}")
    if document.get("archive_sha256") != archive_sha256:
        raise MemberDigestsError("describes another archive than the manifest's")
    files = document.get("files")
    if not isinstance(files, dict):
        raise MemberDigestsError("has no 'files' object")
    digests: MemberDigests = {}
    for name, value in files.items():
        if not isinstance(value, str) or not _HEX.fullmatch(value):
            raise MemberDigestsError(f"the digest of {name!r} is not 64 hex digits")
        digests[name.encode("utf-8", "surrogateescape")] = value
    return digests


def store_digests(
    store: BackupStore, prefix: str, entry: BackupObject, digests: MemberDigests
) -> dict[str, Any] | None:
    """Write the list of site archive `entry` (under `prefix`) into `store`; return the
    record of it the state database keeps, or None (with a warning) when the store
    refused it: a restore then digests as it streams."""
    data = encode(digests, entry.sha256)
    name = list_name(entry)
    try:
        store.put(prefix + name, data)
    except BackupStoreError as error:
        log.warning("member digests not stored", object=entry.name, error=str(error))
        return None
    return {
        "object": name,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "archive_sha256": entry.sha256,
        "digest": DIGEST,
    }


def recorded(
    verification: Mapping[str, Any] | None, entry: BackupObject
) -> Mapping[str, Any] | None:
    """Return the record of `entry`'s list in a backup's verification record, or None when
    the backup was not verified with one."""
    return verified_record(verification, entry, RECORD)


def load(
    store: BackupStore, prefix: str, entry: BackupObject, record: Mapping[str, Any]
) -> MemberDigests | None:
    """Return the digests `record` (from `recorded`) describes for site archive `entry`,
    read from `store` under `prefix` and checked; None, with a warning naming why, when
    they cannot be trusted (the caller then digests every file itself)."""
    try:
        return _load(store, prefix, entry, record)
    except (MemberDigestsError, BackupStoreError) as error:
        log.warning(
            "stored member digests not used; every file is digested as the archive streams",
            object=entry.name,
            reason=str(error),
        )
        return None


def _load(
    store: BackupStore, prefix: str, entry: BackupObject, record: Mapping[str, Any]
) -> MemberDigests:
    name, size, sha256 = record.get("object"), record.get("size"), record.get("sha256")
    if name != list_name(entry) or not isinstance(size, int) or not isinstance(sha256, str):
        raise MemberDigestsError(f"the state database's record of the list is malformed: {record}")
    if record.get("archive_sha256") != entry.sha256 or record.get("digest") != DIGEST:
        raise MemberDigestsError("the state database's record is of another archive or digest")
    data = _read_at_most(store, prefix + name, size)
    if len(data) != size or hashlib.sha256(data).hexdigest() != sha256:
        raise MemberDigestsError(f"{name} changed in the store since it was verified")
    return decode(data, entry.sha256)


def _read_at_most(store: BackupStore, key: str, size: int) -> bytes:
    """Read object `key`, but never more than one byte past `size`: a list grown in the
    store is refused without being read into memory whole."""
    stream = store.open(key)
    try:
        parts: list[bytes] = []
        left = size + 1
        while left > 0 and (chunk := stream.read(min(left, 1 << 20))):
            parts.append(chunk)
            left -= len(chunk)
        return b"".join(parts)
    finally:
        stream.close()
