"""PacketPipe behaves as paramiko's BufferedPipe does, byte for byte and call for call."""

from __future__ import annotations

import random
import threading

import pytest
from paramiko.buffered_pipe import BufferedPipe, PipeTimeout

from daemon.transport.packet_pipe import PacketPipe, PacketQueue


def test_random_feeds_and_reads_give_what_paramikos_pipe_gives() -> None:
    generator = random.Random(822)
    ours = PacketPipe()
    theirs: BufferedPipe[bytes] = BufferedPipe()  # generic in its stubs only
    for _ in range(3000):
        if generator.random() < 0.5:
            packet = generator.randbytes(generator.choice([0, 1, 7, 4096, 32768, 100_000]))
            ours.feed(packet)
            theirs.feed(packet)
        else:
            size = generator.choice([1, 3, 1000, 32768, 65536, 1 << 20])
            if len(theirs) == 0:
                with pytest.raises(PipeTimeout):
                    ours.read(size, timeout=0.0)
                continue
            assert ours.read(size, timeout=0.0) == theirs.read(size, timeout=0.0)
        assert len(ours) == len(theirs)
        assert ours.read_ready() == theirs.read_ready()
    assert ours.empty() == theirs.empty()
    assert len(ours) == 0


def test_a_read_waits_for_a_packet_from_another_thread() -> None:
    pipe = PacketPipe()
    threading.Timer(0.05, pipe.feed, args=(b"late packet",)).start()
    assert pipe.read(100, timeout=5.0) == b"late packet"


def test_a_read_past_its_timeout_raises() -> None:
    with pytest.raises(PipeTimeout):
        PacketPipe().read(10, timeout=0.05)


def test_after_close_what_was_buffered_is_read_then_the_end() -> None:
    pipe = PacketPipe()
    pipe.feed(b"abc")
    pipe.feed(b"defg")
    pipe.close()
    assert pipe.read(5) == b"abcde"
    assert pipe.read(5) == b"fg"
    assert pipe.read(5) == b""


def test_a_read_within_one_packet_hands_it_out_without_a_copy() -> None:
    packet = bytes(range(256)) * 128
    pipe = PacketPipe()
    pipe.feed(packet)
    assert pipe.read(len(packet)) is packet


def test_only_the_front_of_a_queue_can_be_dropped() -> None:
    queue = PacketQueue()
    queue.append(b"abcdef")
    with pytest.raises(ValueError, match="only the front"):
        del queue[2:4]
    del queue[:2]
    assert queue.head() == b"cdef"
    assert len(queue) == 4
