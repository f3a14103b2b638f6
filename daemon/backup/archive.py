"""Reading backup objects back: hashing, decompressing and checking tar members.

Used by verification (every byte re-read and hashed, the archive listed) and by
restore, which refuses an archive holding a member that could write outside the
target directory or create a device.
"""

from __future__ import annotations

import gzip
import hashlib
import stat
import tarfile
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from posixpath import normpath
from typing import BinaryIO, cast

import blake3
import zstandard

from daemon.backup.stores.base import Readable
from daemon.backup.tar_walk import NewDigest
from daemon.domain.errors import LapseError

_CHUNK = 1 << 20


# The digests a stored object's bytes are hashed with: SHA-256, which every manifest
# records, and BLAKE3, which verification records beside it for restores
# (daemon.backup.object_digest): on this machine's cores BLAKE3 takes about a quarter
# of SHA-256's CPU time (0.19 s against 0.84 s for a 743 MiB archive).
DIGESTS: dict[str, NewDigest] = {"sha256": hashlib.sha256, "blake3": blake3.blake3}


class UnsafeArchiveError(LapseError):
    """An archive member could escape the target directory or create a device file."""


class HashingReader:
    """Passes reads through to a stream while counting bytes and hashing them with each of
    `digests` (names in DIGESTS: SHA-256 alone unless told otherwise).

    Raises KeyError for a digest name DIGESTS does not know.
    """

    def __init__(self, stream: Readable, digests: Iterable[str] = ("sha256",)) -> None:
        self._stream = stream
        self.size = 0
        self._digests = {name: DIGESTS[name]() for name in digests}

    def read(self, size: int = -1) -> bytes:
        """Read up to `size` bytes (all when negative), hashing what is read."""
        data = self._stream.read(size if size >= 0 else _CHUNK * 64)
        for digest in self._digests.values():
            digest.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        """Read the stream to its end, so the size and hash cover every byte."""
        while self.read(_CHUNK):
            pass

    def hexdigest(self, name: str) -> str:
        """The hex digest `name` (one this reader was made with) of what was read so far.
        Raises KeyError for another."""
        return self._digests[name].hexdigest()

    @property
    def sha256(self) -> str:
        """The hex SHA-256 of what was read so far. Raises KeyError when it was not asked
        for."""
        return self.hexdigest("sha256")


def decompressed(stream: HashingReader, compression: str) -> BinaryIO:
    """Return a reader of `stream` decompressed ('zstd', 'gzip', 'pigz' or 'none').

    Raises ValueError for an unknown compression.
    """
    if compression == "zstd":
        # The source read a mebibyte at a time, not zstandard's default 128 KiB: every read
        # of a stored object goes through botocore, urllib3 and this module's SHA-256, and
        # an eighth as many of them took about 0.3 s less CPU from a 743 MiB restore here.
        reader = zstandard.ZstdDecompressor().stream_reader(
            cast(BinaryIO, stream), read_size=_CHUNK, read_across_frames=True
        )
        return cast(BinaryIO, reader)
    if compression in ("gzip", "pigz"):
        return cast(BinaryIO, gzip.GzipFile(fileobj=cast(BinaryIO, stream), mode="rb"))
    if compression == "none":
        return cast(BinaryIO, stream)
    raise ValueError(f"unknown compression {compression!r}")


@dataclass
class ArchiveListing:
    """What a tar archive holds, by kind, and the members that make it unsafe to restore."""

    files: int = 0
    directories: int = 0
    symlinks: int = 0
    other: int = 0
    bytes: int = 0
    unsafe: list[str] = field(default_factory=list)
    # The cleaned names of the symlinks and regular files counted so far (for the rules).
    _symlinks: set[str] = field(default_factory=set, repr=False, compare=False)
    _regular: set[str] = field(default_factory=set, repr=False, compare=False)

    def add(self, member: tarfile.TarInfo) -> None:
        """Count the archive's next member, and note why it is unsafe if it is."""
        problem = unsafe_reason(member, self._symlinks, self._regular)
        if problem:
            self.unsafe.append(problem)
        if member.issym():
            self.symlinks += 1
            self._symlinks.add(_clean(member.name))
        elif member.isdir():
            self.directories += 1
        elif member.isfile():
            self.files += 1
            self.bytes += member.size
            if member.isreg():
                self._regular.add(_clean(member.name))
        else:
            self.other += 1

    @property
    def members(self) -> int:
        """How many members the archive has."""
        return self.files + self.directories + self.symlinks + self.other

    def as_dict(self) -> dict[str, object]:
        """The listing as JSON-ready data."""
        return {
            "members": self.members,
            "files": self.files,
            "directories": self.directories,
            "symlinks": self.symlinks,
            "other": self.other,
            "bytes": self.bytes,
            "unsafe": self.unsafe[:20],
        }


def list_archive(stream: BinaryIO) -> ArchiveListing:
    """Read a tar stream to its end and describe it.

    Raises tarfile.TarError (or a decompression error) when the stream is not a
    complete, readable archive.
    """
    listing = ArchiveListing()
    with tarfile.open(fileobj=stream, mode="r|") as archive:
        for member in archive:
            listing.add(member)
    return listing


def list_zip(stream: HashingReader) -> ArchiveListing:
    """Read a zip stream to its end and describe it, every member's CRC checked.

    A zip's directory is at its end, so the stream is spooled to a temporary file
    first (as large as the archive, removed at once). Unsafe: an absolute name or a
    '..' component. Raises zipfile.BadZipFile when the stream is no complete, readable
    zip or a member's CRC does not match.
    """
    listing = ArchiveListing()
    with tempfile.TemporaryFile(prefix="lapse-zip-") as spool:
        while chunk := stream.read(_CHUNK):
            spool.write(chunk)
        spool.seek(0)
        with zipfile.ZipFile(spool) as archive:
            for info in archive.infolist():
                name = info.filename
                if name.startswith("/") or ".." in name.split("/"):
                    listing.unsafe.append(f"{name!r}: absolute path or '..'")
                if info.is_dir():
                    listing.directories += 1
                else:
                    listing.files += 1
                    listing.bytes += info.file_size
            broken = archive.testzip()
    if broken is not None:
        raise zipfile.BadZipFile(f"member {broken!r} fails its CRC check")
    return listing


def clean_name(name: str) -> str:
    """Return a member name as a path relative to the archive's top ('.' for the top)."""
    return _clean(name)


def member_key(name: str) -> bytes:
    """Return a member name as the bytes of its path relative to the archive's top: the
    key of a restored tree's entries and of a site archive's stored member digests."""
    # tarfile decodes names with surrogateescape: this gives back the bytes on disk.
    return _clean(name).encode("utf-8", "surrogateescape")


def _clean(name: str) -> str:
    return normpath(name.removeprefix("./")) if name not in (".", "./") else "."


def unsafe_reason(
    member: tarfile.TarInfo, symlinks: set[str], regular: set[str] | None = None
) -> str | None:
    """Return why `member` must not be restored, or None when it is safe.

    `symlinks` holds the cleaned names of the archive's symlinks seen so far;
    `regular`, when given, those of its regular files (the only members a hard
    link may point to). Unsafe: an absolute name, a '..' component, a device
    file or fifo, a file with the setuid or setgid bit, a hard link whose target
    is absolute, climbs out, lies under a symlink or is not an earlier regular
    file, or a path through a symlink earlier in the archive (which could point
    anywhere).
    """
    name = member.name
    if name.startswith("/"):
        return f"{name!r}: absolute path"
    if ".." in name.split("/"):
        return f"{name!r}: contains '..'"
    if member.ischr() or member.isblk():
        return f"{name!r}: device file"
    if member.isfifo():
        return f"{name!r}: fifo"
    if not (member.isdir() or member.issym()) and member.mode & (stat.S_ISUID | stat.S_ISGID):
        # Restored as root with its recorded owner, such a file could hand root to anyone.
        return f"{name!r}: setuid or setgid file"
    under = _under_symlink(_clean(name), symlinks)
    if under:
        return f"{name!r}: lies under the symlink {under!r}"
    if member.islnk():
        return _unsafe_hard_link(member, symlinks, regular)
    return None


def _unsafe_hard_link(
    member: tarfile.TarInfo, symlinks: set[str], regular: set[str] | None
) -> str | None:
    name, target = member.name, member.linkname
    if target.startswith("/") or ".." in target.split("/"):
        return f"{name!r}: hard link to {target!r} outside the archive"
    cleaned = _clean(target)
    if cleaned in symlinks:
        return f"{name!r}: hard link to the symlink {target!r}"
    under = _under_symlink(cleaned, symlinks)
    if under:
        return f"{name!r}: hard link through the symlink {under!r}"
    if regular is not None and cleaned not in regular:
        return f"{name!r}: hard link to {target!r}, which is no earlier file of the archive"
    return None


def _under_symlink(cleaned: str, symlinks: set[str]) -> str | None:
    parts = cleaned.split("/")
    for depth in range(1, len(parts)):
        prefix = "/".join(parts[:depth])
        if prefix in symlinks:
            return prefix
    return None
