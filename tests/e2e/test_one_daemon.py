"""A second `lapse run` on a state database a live daemon uses refuses to start, naming it.

Run as real processes, on SQLite and on the lab's PostgreSQL: the first daemon is
killed with SIGKILL (no clean-up of its own), and the operating system's end of its
file lock or connection lets the second start.
"""

from __future__ import annotations

import signal
import socket
from pathlib import Path

from tests.e2e.daemon_process import LOCAL_STORES, lapse, start_daemon, stop_daemon, wait_for


def _config(directory: Path, state_url: str) -> Path:
    config = directory / "lapse.toml"
    config.write_text(
        f"""
[daemon]
sync_interval = "1h"
log_format = "json"
[state]
url = "{state_url}"
[billing]
type = "file"
path = "{directory / "billing.json"}"
{LOCAL_STORES}
"""
    )
    (directory / "billing.json").write_text('{"accounts": []}')
    return config


def test_a_second_daemon_refuses_until_the_first_is_killed(tmp_path: Path, state_url: str) -> None:
    config = _config(tmp_path, state_url)
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    first = start_daemon(config, first_log)
    try:
        wait_for(lambda: "lapse running" in first_log.read_text(), 60, "the first daemon")

        refused = lapse("run", "-c", str(config))

        assert refused.returncode == 1, refused.stderr
        message = refused.stderr.strip().splitlines()[-1]
        assert message.startswith("lapse: the state database ")
        assert "is in use by another lapse run" in message
        assert f"pid {first.pid}" in message or f"pid={first.pid}" in message
        assert socket.gethostname()[:20] in message
        assert "started 20" in message
        assert "one daemon per state database" in message
        # A refused daemon did nothing: the first one is still the one running.
        assert first.poll() is None
        # Operator commands work beside the running daemon.
        assert lapse("accounts", "-c", str(config), "--json").returncode == 0
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
