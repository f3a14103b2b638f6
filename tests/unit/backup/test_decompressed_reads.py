"""A restore reads a zstd object from the store in pieces of a mebibyte: each read of
the source passes through botocore, urllib3 and the SHA-256 of the object, and
zstandard's default input size (128 KiB) made eight times as many of them."""

from __future__ import annotations

import io
import os

import zstandard

from daemon.backup.archive import HashingReader, decompressed


class _CountedSource(io.BytesIO):
    """A stored object that records the size of every read asked of it."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.asked: list[int] = []

    def read(self, size: int | None = -1) -> bytes:
        self.asked.append(-1 if size is None else size)
        return super().read(size)


def test_a_zstd_object_is_read_from_the_store_a_mebibyte_at_a_time() -> None:
    content = os.urandom(3 << 20) + b"text " * (1 << 19)
    source = _CountedSource(zstandard.ZstdCompressor(level=1).compress(content))
    hashed = HashingReader(source)
    reader = decompressed(hashed, "zstd")
    out = bytearray()
    while piece := reader.read(1 << 20):
        out += piece
    assert bytes(out) == content
    assert hashed.size == len(source.getvalue())
    assert set(source.asked) == {1 << 20}
