"""One daemon per state database: the lock refuses a second holder and names the first."""

from __future__ import annotations

import os
import socket

import pytest

from daemon.store.db import state_url as to_url
from daemon.store.writer_lock import WriterLockHeldError, acquire_writer_lock


def test_a_second_holder_is_refused_with_the_first_named(state_url: str) -> None:
    first = acquire_writer_lock(to_url(state_url))
    try:
        with pytest.raises(WriterLockHeldError) as refused:
            acquire_writer_lock(to_url(state_url))
        message = str(refused.value)
        assert "in use by another lapse run" in message
        assert f"pid={os.getpid()}" in message or f"pid {os.getpid()}" in message
        assert socket.gethostname()[:20] in message
        assert "started " in message
    finally:
        first.release()


def test_a_released_lock_can_be_taken_again(state_url: str) -> None:
    acquire_writer_lock(to_url(state_url)).release()
    second = acquire_writer_lock(to_url(state_url))
    second.release()
    second.release()  # idempotent


def test_the_lock_is_per_database(state_url: str, postgres: object) -> None:
    """Two state databases (two files, or two databases on one server) do not collide."""
    first = acquire_writer_lock(to_url(state_url))
    try:
        if state_url.startswith("sqlite"):
            other = state_url.replace("state.db", "other.db")
        else:
            other = postgres.create_database(state_url.rsplit("/", 1)[1] + "_b")  # type: ignore[attr-defined]
        acquire_writer_lock(to_url(other)).release()
    finally:
        first.release()
