"""The wrapper every transport command runs in, run here with bash: a script whose
watched process (the session's sshd, locally the daemon) dies while it runs is killed
within a fraction of a second, not left to finish its next step."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from daemon.transport.watched import WATCHED


def _wrapped(watched: int, script: str) -> subprocess.Popen[bytes]:
    # As the local transport starts it: bash leading a session of its own.
    return subprocess.Popen(
        ["bash", "--norc", "-c", WATCHED, "lapse", str(watched), script],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
    )


def _wait_for(path: Path) -> None:
    deadline = time.monotonic() + 10
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


def test_a_script_whose_watched_process_dies_mid_step_is_killed_before_the_step_ends(
    tmp_path: Path,
) -> None:
    """The step after the parent's death takes 0.8 s: a watchdog looking once a second
    let it finish (it did, on a busy CI machine); looking five times a second, it does not."""
    parent = subprocess.Popen(["sleep", "60"])
    started, ran = tmp_path / "started", tmp_path / "ran"
    wrapper = _wrapped(parent.pid, f"touch {started}; sleep 0.8; echo ran > {ran}")
    try:
        _wait_for(started)
        parent.kill()
        parent.wait()
        wrapper.wait(timeout=10)
        time.sleep(1.2)  # past the end of the step, had it gone on
        assert not ran.exists()
    finally:
        parent.kill()
        wrapper.kill()


def test_the_watchdog_forks_nothing_while_it_waits(tmp_path: Path) -> None:
    """Between its looks the watchdog forks no `sleep`: over a second, the session holds
    the same processes (the wrapper, the script's subshell, the watchdog, the script's
    own sleep)."""
    parent = subprocess.Popen(["sleep", "60"])
    started = tmp_path / "started"
    wrapper = _wrapped(parent.pid, f"touch {started}; sleep 30")
    try:
        _wait_for(started)
        seen = set()
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            listing = subprocess.run(
                ["ps", "-s", str(wrapper.pid), "-o", "pid=,args="],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            seen |= {line.split(None, 1)[1] for line in listing.splitlines() if line.strip()}
            time.sleep(0.05)
        assert "sleep 1" not in seen
        assert "sleep 30" in seen
    finally:
        parent.kill()
        parent.wait()  # reaped: a zombie's /proc entry would look alive
        wrapper.wait(timeout=10)
