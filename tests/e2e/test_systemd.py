"""`lapse run` under systemd's notify protocol: READY, watchdog, STATUS, reload, STOPPING."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.e2e.daemon_process import LAPSE, LOCAL_STORES

ROOT = Path(__file__).resolve().parents[2]


def _config(tmp_path: Path) -> Path:
    (tmp_path / "billing.json").write_text('{"accounts": []}')
    config = tmp_path / "lapse.toml"
    config.write_text(
        f"""
[state]
url = "sqlite:///{tmp_path / "state.db"}"
[daemon]
sync_interval = "2s"
[billing]
type = "file"
path = "billing.json"
"""
        + LOCAL_STORES
    )
    return config


def _messages(sock: socket.socket, until: str, timeout: float) -> list[str]:
    """Collect notifications until one equals `until` (or the time is up)."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            seen.append(sock.recv(4096).decode())
        except TimeoutError:
            break
        if seen[-1] == until:
            break
    return seen


def test_notify_watchdog_reload_and_stop(tmp_path: Path) -> None:
    config = _config(tmp_path)
    notify_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify_path))
    env = os.environ | {"NOTIFY_SOCKET": str(notify_path), "WATCHDOG_USEC": "1000000"}
    env.pop("WATCHDOG_PID", None)
    log = (tmp_path / "daemon.log").open("wb")
    daemon = subprocess.Popen(
        [LAPSE, "run", "-c", str(config)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        started = _messages(sock, "READY=1", 30)
        assert "READY=1" in started
        running = _messages(sock, "never", 3)
        assert running.count("WATCHDOG=1") >= 3  # every half second of a 1 s watchdog
        assert any(m.startswith("STATUS=last sync") for m in started + running)

        # A broken config on SIGHUP is rejected; the daemon goes on with the old one.
        config.write_text(config.read_text().replace('type = "file"', 'type = "ftp"'))
        daemon.send_signal(signal.SIGHUP)
        after = _messages(sock, "never", 3)
        assert "RELOADING=1" in after and "READY=1" in after
        assert after.count("WATCHDOG=1") >= 3 and daemon.poll() is None
        assert "config reload rejected" in (tmp_path / "daemon.log").read_text()

        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
        assert "STOPPING=1" in _messages(sock, "STOPPING=1", 5)
    finally:
        if daemon.poll() is None:
            daemon.kill()
        sock.close()
        log.close()


def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is part of the systemd package the lab installs"
    unit = tmp_path / "lapse.service"
    # The unit names the install location; point it at this checkout's executable.
    text = (ROOT / "systemd" / "lapse.service").read_text()
    unit.write_text(text.replace("/opt/lapse/bin/lapse", LAPSE))
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    for line in text.splitlines():
        key = line.split("=", 1)[0]
        if key in {"ProtectSystem", "NoNewPrivileges", "PrivateTmp", "ReadWritePaths"}:
            index = text.splitlines().index(line)
            assert text.splitlines()[index - 1].startswith("#"), f"{key} is not commented"
