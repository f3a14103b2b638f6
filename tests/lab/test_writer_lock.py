"""One daemon per state database: the lock refuses a second holder and names the first."""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path
from typing import Any

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


def _cut_lock_connection(postgres: Any, database: str | None) -> None:
    """Terminate the server backend of the lock's connection, as a server restart would."""
    assert database is not None  # a PostgreSQL URL names its database
    with postgres.connect() as connection:
        rows = connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND application_name LIKE 'lapse run %%'",
            (database,),
        ).fetchall()
    assert rows == [(True,)]


def test_a_lost_postgresql_lock_that_is_free_is_taken_again(postgres: Any) -> None:
    url = postgres.create_database(f"lapse_{uuid.uuid4().hex[:12]}")
    lock = acquire_writer_lock(to_url(url))
    try:
        _cut_lock_connection(postgres, to_url(url).database)
        lock.check()  # reconnects and takes it again
        with pytest.raises(WriterLockHeldError):
            acquire_writer_lock(to_url(url))
        lock.check()
    finally:
        lock.release()


def test_a_postgresql_lock_taken_by_another_meanwhile_fails_the_check(postgres: Any) -> None:
    url = postgres.create_database(f"lapse_{uuid.uuid4().hex[:12]}")
    lock = acquire_writer_lock(to_url(url))
    _cut_lock_connection(postgres, to_url(url).database)
    other = acquire_writer_lock(to_url(url))
    try:
        with pytest.raises(WriterLockHeldError, match="in use by another lapse run"):
            lock.check()
    finally:
        other.release()
        lock.release()


def test_a_removed_lock_file_fails_the_check(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    lock = acquire_writer_lock(url)
    try:
        lock.check()
        (tmp_path / "state.db.lock").unlink()
        other = acquire_writer_lock(url)  # a new file of the same name: not locked
        with pytest.raises(WriterLockHeldError, match="was removed or replaced") as lost:
            lock.check()
        assert f"pid {os.getpid()}" in str(lost.value)
        other.release()
    finally:
        lock.release()
