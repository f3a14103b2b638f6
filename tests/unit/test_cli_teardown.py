"""A command that asked for it ends without the interpreter's teardown, its output whole."""

from __future__ import annotations

import subprocess
import sys

import pytest

_SCRIPT = """
import atexit, threading, time
from daemon.cli.teardown import end_now_if_asked, skip_teardown
atexit.register(lambda: print("teardown"))
print("output")
{before}
end_now_if_asked(7)
print("after")
"""


@pytest.mark.parametrize(
    ("before", "status", "printed"),
    [
        ("skip_teardown()", 7, "output\n"),
        ("", 0, "output\nafter\nteardown\n"),
        (
            "skip_teardown()\n"
            "threading.Thread(target=lambda: (time.sleep(0.2), print('thread done'))).start()",
            0,
            "output\nafter\nthread done\nteardown\n",
        ),
    ],
    ids=["asked: ends at once", "not asked", "asked, a thread still working"],
)
def test_the_process_ends_at_once_only_when_asked_and_nothing_runs(
    before: str, status: int, printed: str
) -> None:
    """Output into a pipe is buffered: what was printed still arrives."""
    ran = subprocess.run(
        [sys.executable, "-c", _SCRIPT.format(before=before)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (ran.returncode, ran.stdout, ran.stderr) == (status, printed, "")
