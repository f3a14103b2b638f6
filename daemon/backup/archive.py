"""Reading backup objects back: hashing, decompressing and checking tar members.

Used by verification (every byte re-read and hashed, the archive listed) and by
restore, which refuses an archive holding a member that could write outside the
target directory or create a device.
"""

from __future__ import annotations

import gzip
import hashlib
import tarfile
from dataclasses import dataclass, field
from posixpath import normpath
from typing import BinaryIO, cast

import zstandard

from daemon.backup.stores.base import Readable

_CHUNK = 1 << 20


class UnsafeArchiveError(Exception):
    """An archive member could escape the target directory or create a device file."""


class HashingReader:
    """Passes reads through to a stream while counting bytes and hashing them (SHA-256)."""

    def __init__(self, stream: Readable) -> None:
        self._stream = stream
        self.size = 0
        self._digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        """Read up to `size` bytes (all when negative), hashing what is read."""
        data = self._stream.read(size if size >= 0 else _CHUNK * 64)
        self._digest.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        """Read the stream to its end, so the size and hash cover every byte."""
        while self.read(_CHUNK):
            pass

    @property
    def sha256(self) -> str:
        """The hex SHA-256 of what was read so far."""
        return self._digest.hexdigest()


def decompressed(stream: HashingReader, compression: str) -> BinaryIO:
    """Return a reader of `stream` decompressed ('zstd', 'gzip', 'pigz' or 'none').

    Raises ValueError for an unknown compression.
    """
    if compression == "zstd":
        reader = zstandard.ZstdDecompressor().stream_reader(
            cast(BinaryIO, stream), read_across_frames=True
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
    symlinks: set[str] = set()
    with tarfile.open(fileobj=stream, mode="r|") as archive:
        for member in archive:
            problem = unsafe_reason(member, symlinks)
            if problem:
                listing.unsafe.append(problem)
            if member.issym():
                listing.symlinks += 1
                symlinks.add(_clean(member.name))
            elif member.isdir():
                listing.directories += 1
            elif member.isfile():
                listing.files += 1
                listing.bytes += member.size
            else:
                listing.other += 1
    return listing


def _clean(name: str) -> str:
    return normpath(name.removeprefix("./")) if name not in (".", "./") else "."


def unsafe_reason(member: tarfile.TarInfo, symlinks: set[str]) -> str | None:
    """Return why `member` must not be restored, or None when it is safe.

    Unsafe: an absolute name, a '..' component, a device file, a hard link whose
    target is absolute or climbs out, or a path through a symlink earlier in the
    archive (which could point anywhere).
    """
    name = member.name
    if name.startswith("/"):
        return f"{name!r}: absolute path"
    if ".." in name.split("/"):
        return f"{name!r}: contains '..'"
    if member.ischr() or member.isblk():
        return f"{name!r}: device file"
    if member.islnk():
        target = member.linkname
        if target.startswith("/") or ".." in target.split("/"):
            return f"{name!r}: hard link to {target!r} outside the archive"
    cleaned = _clean(name)
    parts = cleaned.split("/")
    for depth in range(1, len(parts)):
        if "/".join(parts[:depth]) in symlinks:
            return f"{name!r}: lies under the symlink {'/'.join(parts[:depth])!r}"
    return None
