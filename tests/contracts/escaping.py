"""What a command may start besides plain children: each form holds a process that the
script's own process group does not (`timeout`, job control) or that left its session
(setsid). A transport that kills a command must kill these too."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable

# Form name -> a shell snippet running `sleep {m}` that way (`m` a unique marker).
ESCAPING = {
    "a pipeline": "sleep {m} | cat",
    "timeout (a process group of its own)": "timeout 600 sleep {m}",
    "the script's own job control": "set -m; sleep {m} & wait",
    "a child that left the session (setsid)": "setsid sleep {m} & wait",
}


def running(marker: str) -> list[str]:
    """The command lines of processes on this machine whose arguments hold `sleep MARKER`."""
    found = subprocess.run(["pgrep", "-a", "-f", f"sleep {marker}"], capture_output=True, text=True)
    return [line for line in found.stdout.splitlines() if "pgrep" not in line]


def assert_killing_the_starter_ends_it(starter_code: str, marker: str) -> None:
    """Run `starter_code` (Python) in a process of its own: it starts a command that prints
    "started" and sleeps with `marker`, and prints what it read. Then SIGKILL that
    process, as a daemon dies, and assert that nothing with `marker` runs 5 s later."""
    child = subprocess.Popen(
        [sys.executable, "-c", starter_code], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "started"
        _wait_while(lambda: not running(marker))
        assert running(marker), "the command should be running"
        child.kill()
        child.wait()
        _wait_while(lambda: bool(running(marker)))
        assert not running(marker), "the command outlived the process that started it"
    finally:
        child.kill()
        subprocess.run(["pkill", "-KILL", "-f", f"sleep {marker}"], check=False)


def _wait_while(condition: Callable[[], bool], seconds: float = 5) -> None:
    deadline = time.monotonic() + seconds
    while condition() and time.monotonic() < deadline:
        time.sleep(0.1)
