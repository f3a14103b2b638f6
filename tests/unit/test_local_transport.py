"""The local transport's bash: what it reads before the script, and that a command dies
with the daemon that started it."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from daemon.transport.local import LocalTransport
from tests.contracts.escaping import ESCAPING, assert_killing_the_starter_ends_it


def test_a_local_command_never_reads_the_users_bashrc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bash reads ~/.bashrc even for `-c` when it believes sshd started it (SSH_CLIENT set,
    at the first shell level): a daemon run from an SSH login would have every local
    command read its operator's ~/.bashrc, and whatever it prints land in the output."""
    (tmp_path / ".bashrc").write_text("echo from-bashrc\nexport LAPSE_FROM_RC=read\n")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("SSH_CLIENT", "192.0.2.1 50000 22")
    monkeypatch.setenv("SHLVL", "0")
    monkeypatch.delenv("LAPSE_FROM_RC", raising=False)
    result = LocalTransport("here").run('echo "rc=${LAPSE_FROM_RC:-unread}"', "rc")
    assert result.stdout == b"rc=unread\n"


@pytest.mark.parametrize("form", list(ESCAPING))
def test_a_local_command_dies_with_the_daemon_that_started_it(form: str) -> None:
    """A daemon killed mid-command (SIGKILL: it cleans nothing up) leaves nothing of the
    command running, whatever process groups the command made: its re-run would
    otherwise run beside it."""
    marker = f"{86400 + secrets.randbelow(10**6)}.{secrets.randbelow(10**6)}"
    command = f"echo started; {ESCAPING[form].format(m=marker)}; sleep {marker}"
    child_code = f"""
import time
from daemon.transport.local import LocalTransport
with LocalTransport("here").start({command!r}, "long") as process:
    print(process.read(100).decode().strip(), flush=True)
    time.sleep(3600)
"""
    assert_killing_the_starter_ends_it(child_code, marker)
