"""On SQLite a second `lapse run` on a state database a live daemon uses refuses to start,
naming it; on PostgreSQL daemons share the database, and the lock elects their leader.

Run as real processes: the first daemon is killed with SIGKILL (no clean-up of its
own), and the operating system's end of its file lock or connection lets the second
start (SQLite) or lead (PostgreSQL). `lapse run --once` refuses beside either.
"""

from __future__ import annotations

import json
import signal
import socket
import time
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from daemon.store.writer_lock import WriterLock, acquire_writer_lock, try_writer_lock
from tests.e2e.daemon_process import LOCAL_STORES, lapse, start_daemon, stop_daemon, wait_for
from tests.lab.services.postgres import PostgresServer

# Given as the state database's password on PostgreSQL (the lab's server trusts
# loopback, so any password works): it must never show in any output.
STATE_PASSWORD = "pw-state-6f1e0"


def _config(directory: Path, state_url: str) -> Path:
    config = directory / "lapse.toml"
    password = 'password = { env = "LAPSE_TEST_STATE_PW" }' if "postgresql" in state_url else ""
    config.write_text(
        f"""
[daemon]
sync_interval = "1h"
log_format = "json"
[state]
url = "{state_url}"
{password}
[billing]
type = "file"
path = "{directory / "billing.json"}"
{LOCAL_STORES}
"""
    )
    account = {
        "account_id": "paid1",
        "plan": "default",
        "contact": {"name": "Paid Client", "email": "paid1@example.org", "timezone": "UTC"},
        "currency": "USD",
        "invoices": [],
        "services": [],
    }
    (directory / "billing.json").write_text(json.dumps({"accounts": [account]}))
    return config


def test_a_second_daemon_refuses_until_the_first_is_killed(
    tmp_path: Path, state_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAPSE_TEST_STATE_PW", STATE_PASSWORD)
    config = _config(tmp_path, state_url)
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    first = start_daemon(config, first_log)
    try:
        wait_for(lambda: "billing sync done" in first_log.read_text(), 60, "the first daemon")
        if "postgresql" in state_url:
            _a_second_daemon_follows(config, tmp_path, first.pid)
            return

        refused = lapse("run", "-c", str(config))
        once = lapse("run", "--once", "-c", str(config))

        assert refused.returncode == 1, refused.stderr
        message = refused.stderr.strip().splitlines()[-1]
        assert message.startswith("lapse: error: the state database ")
        assert "is in use by another lapse run" in message
        assert f"pid {first.pid}" in message or f"pid={first.pid}" in message
        assert socket.gethostname()[:20] in message
        assert "started 20" in message
        assert "one daemon per state database" in message
        assert once.returncode == 1 and "is in use by another lapse run" in once.stderr
        # A refused daemon did nothing: the first one is still the one running.
        assert first.poll() is None
        # Operator commands, writing ones included, work beside the running daemon.
        held = lapse("hold", "paid1", "--reason", "dispute", "-c", str(config))
        assert held.returncode == 0, held.stderr
        assert lapse("release", "paid1", "-c", str(config)).returncode == 0
        for output in (refused.stdout, refused.stderr, once.stderr, first_log.read_text()):
            assert STATE_PASSWORD not in output
    finally:
        assert stop_daemon(first, signal.SIGKILL) == -signal.SIGKILL

    second = start_daemon(config, second_log)
    try:
        wait_for(lambda: "lapse running" in second_log.read_text(), 60, "the second daemon")
    finally:
        assert stop_daemon(second) == 0, second_log.read_text()[-2000:]
    # After a clean stop the lock is free again at once.
    third = start_daemon(config, tmp_path / "third.log")
    try:
        wait_for(lambda: "lapse running" in (tmp_path / "third.log").read_text(), 60, "a third")
    finally:
        assert stop_daemon(third) == 0


def _a_second_daemon_follows(config: Path, directory: Path, leader: int) -> None:
    """PostgreSQL: a second daemon starts and follows (no sync of its own); `--once` is
    refused naming the leader; operator commands work beside both."""
    log = directory / "follower.log"
    follower = start_daemon(config, log)
    try:
        wait_for(lambda: "lapse running" in log.read_text(), 60, "the follower")
        once = lapse("run", "--once", "-c", str(config))
        assert once.returncode == 1 and "is in use by another lapse run" in once.stderr
        assert f"pid={leader}" in once.stderr
        assert STATE_PASSWORD not in once.stderr
        held = lapse("hold", "paid1", "--reason", "dispute", "-c", str(config))
        assert held.returncode == 0, held.stderr
        assert '"leader": false' in log.read_text()
        assert "billing sync done" not in log.read_text()
    finally:
        assert stop_daemon(follower) == 0, log.read_text()[-2000:]


def _cut_and_take(postgres: PostgresServer, state_url: str) -> WriterLock:
    """Cut the daemon's lock connection and take the lock before it takes it back (it
    tries every second: a few tries may be needed)."""
    for _ in range(20):
        with postgres.connect() as connection:
            connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND application_name LIKE 'lapse run %%'",
                (make_url(state_url).database,),
            )
        usurper = try_writer_lock(state_url)
        if usurper is not None:
            return usurper
        time.sleep(0.3)
    raise AssertionError("the daemon took its lock back every time")


def test_a_daemon_that_loses_its_lock_stops(
    tmp_path: Path, state_url: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    """The lock file deleted: the daemon notices within its check interval and stops with
    status 1. On PostgreSQL, the connection cut and the lock taken by another meanwhile:
    the daemon steps down and goes on following, and leads again once the lock is free."""
    monkeypatch.setenv("LAPSE_TEST_STATE_PW", STATE_PASSWORD)
    config = _config(tmp_path, state_url)
    log = tmp_path / "daemon.log"
    daemon = start_daemon(config, log)
    try:
        wait_for(lambda: "billing sync done" in log.read_text(), 60, "the daemon")
        if state_url.startswith("sqlite"):
            (tmp_path / "state.db.lock").unlink()
            usurper = acquire_writer_lock(state_url)
        else:
            usurper = _cut_and_take(request.getfixturevalue("postgres"), state_url)
        if state_url.startswith("sqlite"):
            try:
                wait_for(lambda: daemon.poll() is not None, 30, "the daemon to stop")
            finally:
                usurper.release()
            assert daemon.returncode == 1
            assert "one-daemon lock lost; stopping" in log.read_text()
            return
        try:
            wait_for(lambda: "stepping down" in log.read_text(), 30, "the daemon to step down")
            assert daemon.poll() is None
        finally:
            usurper.release()
        wait_for(lambda: log.read_text().count("leading: syncs") == 2, 30, "it to lead again")
        assert stop_daemon(daemon) == 0
    finally:
        stop_daemon(daemon, signal.SIGKILL)
