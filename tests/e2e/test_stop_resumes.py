"""SIGTERM (`systemctl stop`) lets the running step finish, records where the phase
stands, and the next start resumes it without repeating a finished step."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from daemon.domain.states import ActionStatus, StepStatus
from daemon.store.models import ScheduledAction
from tests.e2e.daemon_process import start_daemon, stop_daemon, wait_for
from tests.lab.services.sshd import SSHServer
from tests.lab.storm_scene import prepare, steps_run, write_storm


@pytest.fixture
def daemons() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        stop_daemon(process, signal.SIGKILL)


def test_a_stop_finishes_the_step_and_the_next_start_resumes_after_it(
    tmp_path: Path, sshd: SSHServer, daemons: list[subprocess.Popen[bytes]]
) -> None:
    storm = write_storm(
        tmp_path, [sshd], f"sqlite:///{tmp_path / 'state.db'}", accounts=1, sleep_s=4
    )
    app = storm.app()
    [action_id] = prepare(storm, app)
    [account_id] = storm.accounts
    daemons.append(start_daemon(storm.config, tmp_path / "first.log"))
    wait_for(lambda: f"start {account_id} " in storm.trace.read_text(), 60, "the first step")

    assert stop_daemon(daemons[0]) == 0  # SIGTERM, during the 4 s step

    trace = storm.trace.read_text()
    assert f"end {account_id} " in trace  # the step under way finished
    assert f"step2 {account_id} " not in trace  # the next one did not start
    assert steps_run(app, account_id) == [
        ("Wait on the host", StepStatus.DONE),
        ("Record the second step", StepStatus.PENDING),
    ]
    with app.sessions() as session:
        action = session.get(ScheduledAction, action_id)
        assert action is not None
        assert (action.status, action.claimed_by) == (ActionStatus.RUNNING, None)

    daemons.append(start_daemon(storm.config, tmp_path / "second.log"))

    def done() -> bool:
        with app.sessions() as session:
            status = session.scalar(
                select(ScheduledAction.status).where(ScheduledAction.id == action_id)
            )
        return status == ActionStatus.DONE

    wait_for(done, 60, "the phase to finish after the restart")
    trace = storm.trace.read_text()
    assert trace.count(f"start {account_id} ") == 1  # the finished step did not run again
    assert trace.count(f"step2 {account_id} ") == 1
    assert stop_daemon(daemons[1]) == 0
