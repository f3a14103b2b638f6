"""Walking a tar stream once, handing each member's content to a digest without copies.

tarfile's stream mode copies every byte of content several times on its way to
the caller (its stream buffer joins and slices what it read, and extractfile
adds a buffered reader on top): reading a site archive through it cost the
daemon about as much CPU as decompressing and digesting it. This walker reads
the stream in pieces and hands slices of them (memoryviews) straight to the
digest; tarfile still parses every header (`TarInfo.frombuf`, and a whole
`TarFile` for members that pax or GNU long-name headers describe), so names,
sizes, modes and link targets mean exactly what they mean to tarfile.

A sparse member or a global pax header is rare in a site archive and needs
tarfile's own reading: from there on the rest of the stream is walked by
tarfile itself, with the same result.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable
from typing import BinaryIO, Protocol, cast

# What is asked of the stream at a time. Small on purpose: a decompressing reader
# returns its output only once that much is decoded, and the relay hands a
# compressed chunk to the host once it was read through, so the less output a read
# asks for, the sooner every header decoded from a chunk is checked (tarfile's own
# stream buffer read 64 KiB at a time too).
_PIECE = 64 * 1024
_BLOCK = tarfile.BLOCKSIZE
# Headers describing the member after them: processed by tarfile with that member.
_META_TYPES = (
    tarfile.XHDTYPE,
    tarfile.SOLARIS_XHDTYPE,
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
)
# Extended headers longer than this are refused: names and times take a few hundred bytes.
_MAX_META = 16 << 20
_ERRORS = "surrogateescape"


class Hasher(Protocol):
    """A running digest, as hashlib's and blake3's objects are."""

    def update(self, data: bytes | memoryview, /) -> object:
        """Add `data` to what is digested."""
        ...

    def hexdigest(self) -> str:
        """Return the digest of everything added so far, in hex."""
        ...


# Told each member in archive order, with a function returning the hex digest of the
# member's content (to be called, if at all, before the visit returns).
Visit = Callable[[tarfile.TarInfo, Callable[[], str]], None]
# Makes a fresh digest for one member's content (hashlib.sha256, blake3.blake3).
NewDigest = Callable[[], Hasher]


class _Reader:
    """Reads a stream in pieces; hands out exact byte counts."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._piece = memoryview(b"")
        self._at = 0
        self.offset = 0

    def _fill(self) -> bool:
        data = self._stream.read(_PIECE)
        if not data:
            return False
        self._piece, self._at = memoryview(data), 0
        return True

    def feed(self, size: int, update: Callable[[memoryview], object]) -> int:
        """Pass the next `size` bytes (fewer at the stream's end) to `update`, in slices;
        return how many were passed."""
        done = 0
        while done < size:
            if self._at >= len(self._piece) and not self._fill():
                break
            piece = self._piece[self._at : self._at + size - done]
            self._at += len(piece)
            done += len(piece)
            update(piece)
        self.offset += done
        return done

    def take(self, size: int) -> bytes:
        """Return the next `size` bytes (fewer at the stream's end)."""
        parts: list[memoryview] = []
        self.feed(size, parts.append)
        return b"".join(parts)

    def read(self, size: int = -1) -> bytes:
        """File-like read, for tarfile once it takes over the rest of the stream."""
        if size < 0:
            parts: list[memoryview] = []
            while self.feed(_PIECE, parts.append):
                pass
            return b"".join(parts)
        return self.take(size)


class _Chain:
    """Bytes already read, then the rest of the reader: what tarfile reads when it takes over."""

    def __init__(self, head: bytes, reader: _Reader) -> None:
        self._head = io.BytesIO(head)
        self._reader = reader

    def read(self, size: int = -1) -> bytes:
        data = self._head.read(size)
        if size < 0:
            return data + self._reader.read()
        if len(data) < size:
            data += self._reader.take(size - len(data))
        return data


def _padded(size: int) -> int:
    return -(-size // _BLOCK) * _BLOCK


def _has_data(member: tarfile.TarInfo) -> bool:
    # As tarfile decides what to skip: a regular file's or an unknown type's content.
    return member.isreg() or member.type not in tarfile.SUPPORTED_TYPES


def walk(stream: BinaryIO, visit: Visit, new_digest: NewDigest) -> None:
    """Read the tar stream `stream` to its end, calling `visit` for each member in order;
    a member's content digest is made with `new_digest`.

    The end is the first zero block, or the stream's end at a header. Raises
    tarfile.ReadError for a stream that is empty, does not start with a valid
    header, or ends inside a member; whatever `visit` or the stream raises.
    """
    reader = _Reader(stream)
    meta = bytearray()
    while True:
        header = reader.take(_BLOCK)
        first = reader.offset == len(header)
        if len(header) == _BLOCK and header.count(0) == _BLOCK:
            # A zero block ends the archive.
            if meta:
                raise tarfile.ReadError("extended headers without a member")
            return
        try:
            raw = tarfile.TarInfo.frombuf(header, tarfile.ENCODING, _ERRORS)
        except tarfile.HeaderError as error:
            # As tarfile: a bad first header is an error, a bad later one ends the archive
            # (unless extended headers announced a member).
            if first or meta:
                raise tarfile.ReadError("empty file" if not header else str(error)) from None
            return
        if raw.type == tarfile.XGLTYPE or raw.type == tarfile.GNUTYPE_SPARSE:
            _hand_over(bytes(meta) + header, reader, visit, new_digest)
            return
        if raw.type in _META_TYPES:
            if len(meta) + raw.size > _MAX_META:
                raise tarfile.ReadError(f"an extended header of {raw.size} bytes")
            data = reader.take(_padded(raw.size))
            if len(data) < _padded(raw.size):
                raise tarfile.ReadError("unexpected end of data")
            meta += header + data
            continue
        if meta:
            if b"GNU.sparse." in meta:
                _hand_over(bytes(meta) + header, reader, visit, new_digest)
                return
            member = _parse(bytes(meta) + header)
            meta.clear()
        else:
            member = raw
            if member.isdir():
                member.name = member.name.rstrip("/")
        _visit(member, reader, visit, new_digest)


def _parse(blocks: bytes) -> tarfile.TarInfo:
    """The member that extended headers and its own header describe, as tarfile reads it."""
    with tarfile.open(fileobj=io.BytesIO(blocks), mode="r:", errors=_ERRORS) as archive:
        member = archive.next()
    if member is None:
        raise tarfile.ReadError("extended headers without a member")
    return member


def _visit(member: tarfile.TarInfo, reader: _Reader, visit: Visit, new_digest: NewDigest) -> None:
    size = member.size if _has_data(member) else 0
    consumed = False

    def digest() -> str:
        nonlocal consumed
        hasher = new_digest()
        consumed = True
        if reader.feed(size, hasher.update) < size:
            raise tarfile.ReadError("unexpected end of data")
        return hasher.hexdigest()

    visit(member, digest)
    if not consumed and reader.feed(size, _ignore) < size:
        raise tarfile.ReadError("unexpected end of data")
    padding = _padded(size) - size
    if reader.feed(padding, _ignore) < padding:
        raise tarfile.ReadError("unexpected end of data")


def _ignore(_piece: memoryview) -> None:
    return None


def _hand_over(head: bytes, reader: _Reader, visit: Visit, new_digest: NewDigest) -> None:
    """Walk the rest of the stream (from the headers in `head`) with tarfile itself."""
    with tarfile.open(
        fileobj=cast(BinaryIO, _Chain(head, reader)),
        mode="r|",
        bufsize=_PIECE,
        errors=_ERRORS,
    ) as archive:
        for member in archive:
            visit(member, _tarfile_digest(archive, member, new_digest))


def _tarfile_digest(
    archive: tarfile.TarFile, member: tarfile.TarInfo, new_digest: NewDigest
) -> Callable[[], str]:
    def digest() -> str:
        hasher = new_digest()
        content = archive.extractfile(member)
        if content is not None:
            while chunk := content.read(1 << 20):
                hasher.update(chunk)
        return hasher.hexdigest()

    return digest
