"""The stop watch kills a streaming command when its phase must stop, and only then."""

from __future__ import annotations

import time

from sqlalchemy.exc import OperationalError

from daemon.backup.stop_watch import stop_watch
from daemon.transport.local import LocalTransport


def test_a_silent_command_is_killed_soon_after_the_check_answers() -> None:
    """The command sends nothing for a minute (a dump waiting for a lock): the read
    blocks, yet the stream ends within a poll interval of the answer."""
    asked_at: list[float] = []

    def check() -> str | None:
        asked_at.append(time.monotonic())
        return "payment event generic:evt-1 recorded" if len(asked_at) >= 2 else None

    transport = LocalTransport("local", command_timeout=120)
    started = time.monotonic()
    # One process: the local transport kills bash, not what bash started (over SSH the
    # closed channel ends the whole session).
    with (
        transport.start("exec sleep 60", "silent") as process,
        stop_watch(check, process, interval=0.2) as stopped,
    ):
        data = process.read(1 << 16)
    assert data == b""
    assert stopped.reason == "payment event generic:evt-1 recorded"
    assert len(asked_at) == 2
    assert time.monotonic() - started < 5


def test_a_command_runs_to_its_end_while_the_check_has_no_reason() -> None:
    transport = LocalTransport("local", command_timeout=30)
    with transport.start("sleep 0.5; echo done", "short") as process:
        with stop_watch(lambda: None, process, interval=0.1) as stopped:
            data = process.read_all()
        result = process.check()
    assert (data, stopped.reason, result.status) == (b"done\n", None, 0)


def test_a_check_that_cannot_reach_the_database_is_asked_again() -> None:
    """An unknown answer is no reason to stop a backup; the next answer counts."""
    answers: list[str | None] = []

    def check() -> str | None:
        answers.append(None)
        if len(answers) == 1:
            raise OperationalError("SELECT 1", {}, Exception("database is locked"))
        return "the account is now active"

    transport = LocalTransport("local", command_timeout=30)
    with (
        transport.start("exec sleep 30", "silent") as process,
        stop_watch(check, process, interval=0.1) as stopped,
    ):
        assert process.read(10) == b""
    assert stopped.reason == "the account is now active"
    assert len(answers) == 2
