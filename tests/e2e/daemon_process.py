"""Running the installed `lapse` command as a real process in end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

LAPSE = str(Path(sys.executable).parent / "lapse")

# The config sections every end-to-end config shares: backups and notices kept
# in directories next to the config.
LOCAL_STORES = """
[backup.store]
type = "local"
path = "backups"
[notices.notifier]
type = "outbox"
path = "outbox"
"""


def local_config(directory: Path, www: Path) -> Path:
    """Write `directory`/lapse.toml: SQLite state and billing.json (which the caller
    writes) in `directory`, host web1 reached locally with `www` as its allowed root, and
    the local stores; return its path."""
    config = directory / "lapse.toml"
    config.write_text(
        f"""
[state]
url = "sqlite:///{directory / "state.db"}"
[billing]
type = "file"
path = "billing.json"
[hosts.web1]
transport = "local"
playbook = "nginx-linux"
allowed_roots = ["{www}"]
"""
        + LOCAL_STORES
    )
    return config


def lapse(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run one `lapse` command to completion and return its result (never raises on exit status)."""
    return subprocess.run(
        [LAPSE, *args], capture_output=True, text=True, timeout=120, env=env, check=False
    )


def python(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `code` (dedented) in a fresh interpreter of this venv and return its result (never
    raises on exit status): for what is process-wide, such as the garbage collector."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def start_daemon(
    config: Path | None, log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start `lapse run -c CONFIG` (the embedded defaults when `config` is None), its
    output going to `log`."""
    arguments = ["-c", str(config)] if config else []
    with log.open("ab") as sink:
        return subprocess.Popen(
            [LAPSE, "run", *arguments],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env or os.environ.copy(),
            start_new_session=True,
        )


def stop_daemon(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> int:
    """Send `sig` and wait for the process to end; returns its exit status."""
    if process.poll() is None:
        process.send_signal(sig)
    return process.wait(timeout=60)


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `condition` every 0.2 s until true; raises AssertionError naming `what` on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
