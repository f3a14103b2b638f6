"""The lab's guards for what test processes share: a file lock, and user tools that wait
out the passwd lock another process holds."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.lab.services import common
from tests.lab.services.common import LabError, file_lock, user_tool


def _locked_elsewhere(lock: Path) -> bool:
    """Whether another process finds `lock` taken (util-linux flock, without waiting)."""
    probe = subprocess.run(["flock", "--nonblock", str(lock), "true"], check=False)
    return probe.returncode != 0


def test_a_file_lock_keeps_other_processes_out_until_released(tmp_path: Path) -> None:
    lock = tmp_path / "shared.lock"
    with file_lock(lock):
        assert _locked_elsewhere(lock)
    assert not _locked_elsewhere(lock)


def _fake_tool(tmp_path: Path, body: str) -> tuple[Path, Path]:
    """A stand-in user tool that logs each call to a file, then runs `body`."""
    calls = tmp_path / "calls"
    tool = tmp_path / "useradd"
    tool.write_text(f"#!/bin/sh\necho call >> {calls}\n{body}\n")
    tool.chmod(0o755)
    return tool, calls


def test_a_user_tool_refused_the_passwd_lock_is_run_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(common, "USER_TOOL_PAUSE", 0.0)
    tool, calls = _fake_tool(
        tmp_path,
        f'[ "$(wc -l < {tmp_path / "calls"})" -ge 3 ] && exit 0\n'
        'echo "useradd: cannot lock /etc/passwd; try again later." >&2\nexit 1',
    )
    assert user_tool(str(tool)).returncode == 0
    assert len(calls.read_text().splitlines()) == 3


def test_a_user_tool_failing_otherwise_fails_at_once(tmp_path: Path) -> None:
    tool, calls = _fake_tool(tmp_path, "echo \"useradd: user 'bob' already exists\" >&2\nexit 9")
    with pytest.raises(LabError, match="already exists"):
        user_tool(str(tool))
    assert len(calls.read_text().splitlines()) == 1
    assert user_tool(str(tool), check=False).returncode == 9
