"""The restore's relay: what the checker reads through the gate reaches the host whole and
in order, and the pieces it reads are views of the gate's chunks, not copies."""

from __future__ import annotations

import io
import os
from pathlib import Path

from daemon.backup.relay import CHUNK, Gate
from daemon.transport.local import LocalTransport


def _relayed(tmp_path: Path, data: bytes, piece: int) -> tuple[list[bytes | memoryview], bytes]:
    """Read `data` through a gate in pieces of `piece` bytes into a real `cat` on this
    machine; return the pieces read and what `cat` wrote."""
    received = tmp_path / "received"
    sent: list[int] = []
    pieces: list[bytes | memoryview] = []
    with (
        LocalTransport("here").start_bulk(f"cat > {received}", "relay") as process,
        Gate(io.BytesIO(data), process, sent.append) as gate,
    ):
        while read := gate.read(piece):
            pieces.append(read)
        gate.finish()
        process.check()
    assert sum(sent) == len(data)
    return pieces, received.read_bytes()


def test_the_host_receives_every_byte_the_checker_read_in_order(tmp_path: Path) -> None:
    data = os.urandom(3 * CHUNK + 12345)
    pieces, received = _relayed(tmp_path, data, 64 * 1024 + 7)
    assert received == data
    assert b"".join(pieces) == data


def test_a_part_of_a_chunk_is_a_view_of_it_not_a_copy(tmp_path: Path) -> None:
    """The walk reads 64 KiB at a time from 1 MiB chunks: a copy of each piece cost a
    restore 0.1 s of CPU a GiB. Pieces of one chunk share its memory."""
    data = os.urandom(2 * CHUNK)
    pieces, received = _relayed(tmp_path, data, 64 * 1024)
    assert received == data
    assert len(pieces) == 32
    assert all(isinstance(piece, memoryview) for piece in pieces)
    chunks = {id(piece.obj) for piece in pieces if isinstance(piece, memoryview)}
    assert len(chunks) == 2  # sixteen views of each chunk


def test_a_whole_chunk_is_handed_out_as_it_is(tmp_path: Path) -> None:
    data = os.urandom(2 * CHUNK)
    pieces, received = _relayed(tmp_path, data, -1)
    assert received == data
    assert [type(piece) for piece in pieces] == [bytes, bytes]
