"""The question a restore's head start asks in a forked child (daemon.runtime.restore_ahead):
answered on a pipe, the child reaped, and nothing but the answer coming out of it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from daemon.backup.head_start import FirstArchive
from daemon.backup.stores import deferred_store
from daemon.config import load_embedded_config
from daemon.config.schema import StateConfig
from daemon.runtime import restore_ahead
from daemon.runtime.restore_ahead import ask_in_child


def _reaped(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


def test_the_child_answers_and_is_reaped() -> None:
    first = FirstArchive("web1", "acct-1/b/files-1.tar.zst", "acct-1/b/files-1.tar.zst.l")
    answer = ask_in_child(lambda: first)
    pid = answer._pid  # type: ignore[attr-defined]
    assert answer() == first
    assert _reaped(pid)
    assert ask_in_child(lambda: FirstArchive("web1", "k"))() == FirstArchive("web1", "k", None)


def test_a_child_that_fails_or_has_nothing_answers_none() -> None:
    def broken() -> FirstArchive | None:
        raise RuntimeError("no state database")

    assert ask_in_child(broken)() is None
    assert ask_in_child(lambda: None)() is None


def test_nothing_of_the_child_reaches_the_parents_output(capfd: pytest.CaptureFixture[str]) -> None:
    """Its standard streams are /dev/null: a log line or a print of the child (the state
    database's own warnings, say) cannot land in the command's output."""

    def chatty() -> FirstArchive | None:
        print("LEAKED to stdout", flush=True)
        os.write(2, b"LEAKED to stderr\n")
        return FirstArchive("web1", "k")

    assert ask_in_child(chatty)() == FirstArchive("web1", "k")
    captured = capfd.readouterr()
    assert "LEAKED" not in captured.out + captured.err


def test_the_child_leaves_without_the_parents_exit_handlers(tmp_path: Path) -> None:
    """os._exit: output the parent buffered is not written twice, and what the parent
    registered to run at exit runs once, in the parent."""
    runs = tmp_path / "exit-handler-runs"
    code = f"""
import atexit, sys
from daemon.backup.head_start import FirstArchive
from daemon.runtime.restore_ahead import ask_in_child
def ran():
    with open({str(runs)!r}, "a") as runs:
        runs.write("ran ")
atexit.register(ran)
sys.stdout.write("once ")
print(ask_in_child(lambda: FirstArchive("h", "k"))())
"""
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert ran.stdout == "once FirstArchive(host='h', key='k', list_key=None)\n"
    assert runs.read_text() == "ran "


def test_an_answer_beyond_its_limit_is_refused_and_the_child_killed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(restore_ahead, "_ANSWER_LIMIT", 64)
    answer = ask_in_child(lambda: FirstArchive("web1", "k" * 4096))
    pid = answer._pid  # type: ignore[attr-defined]
    started = time.monotonic()
    assert answer() is None
    assert _reaped(pid)
    assert time.monotonic() - started < 10


@pytest.mark.parametrize(
    "data",
    [b"not json", b"[]", b'{"host": "web1"}', b'{"host": 1, "key": "k", "list_key": null}'],
)
def test_an_answer_out_of_shape_is_none(data: bytes) -> None:
    assert restore_ahead._parse(data) is None


def test_a_state_database_that_is_not_there_answers_none(tmp_path: Path) -> None:
    """The child reads the database as it is: one missing is no answer, and the restore
    reports it itself."""
    embedded = load_embedded_config(tmp_path / "data")
    config = embedded.model_copy(
        update={"state": StateConfig(url=f"sqlite:///{tmp_path / 'none.db'}")}
    )
    answer = ask_in_child(
        lambda: restore_ahead._first_archive(
            config, deferred_store(config.backup.store), "acct-1", "latest", None, True
        )
    )
    assert answer() is None
    assert not (tmp_path / "none.db").exists()


def test_a_child_that_cannot_be_forked_is_no_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    """A process limit reached: the restore goes on without its head start, not failing."""

    def refused() -> int:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(os, "fork", refused)
    opened = len(os.listdir("/proc/self/fd"))
    assert ask_in_child(lambda: FirstArchive("web1", "k"))() is None
    assert len(os.listdir("/proc/self/fd")) == opened
