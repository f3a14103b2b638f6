"""Phases side by side on the lab sshd: one per account, each host's limit, unsuspend first,
syncs and payments never waiting behind a phase. On SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from daemon.domain.states import ActionStatus, StepStatus
from daemon.runtime.app import App
from daemon.runtime.phase_pool import PhasePool
from daemon.runtime.scheduler import SYNC_JOB, LapseScheduler
from daemon.store.models import PlaybookRun, ScheduledAction, StepRecord
from daemon.store.payment_events import record_payment
from tests.e2e.daemon_process import wait_for
from tests.lab.services.sshd import SSHServer
from tests.lab.storm_scene import (
    Storm,
    intervals,
    lapse,
    most_at_once,
    prepare,
    statuses,
    write_storm,
)


@pytest.fixture
def pool_factory() -> Iterator[list[PhasePool]]:
    pools: list[PhasePool] = []
    yield pools
    for pool in pools:
        pool.stop(10)


def _pool(app: App, pools: list[PhasePool], workers: int) -> PhasePool:
    pool = PhasePool(app.runner, app.config.hosts, workers=workers, lease=timedelta(seconds=30))
    pools.append(pool)
    pool.start()
    pool.kick()
    return pool


def _all_done(app: App, ids: list[int]) -> bool:
    done = statuses(app)
    return all(done.get(action_id) == ActionStatus.DONE for action_id in ids)


def test_each_host_runs_at_most_its_limit_and_an_account_one_phase(
    tmp_path: Path, sshd: SSHServer, state_url: str, pool_factory: list[PhasePool]
) -> None:
    """Twelve accounts on two hosts (limit 2), eight workers: never more than two phases
    on a host, both hosts busy at once, and an account's verify never beside its suspend."""
    storm = write_storm(tmp_path, [sshd], state_url, accounts=12, sleep_s=2.0, max_parallel=2)
    app = storm.app()
    ids = prepare(storm, app)
    first = next(iter(storm.accounts))
    ids.append(app.runner.queue.add(first, "verify"))  # same account, queued behind

    _pool(app, pool_factory, workers=8)
    wait_for(lambda: _all_done(app, ids), 90, "every phase")

    spans = intervals(storm)
    assert len(spans) == 13
    for host in ("web1", "web2"):
        on_host = [(s, e) for account, _, s, e in spans if storm.accounts[account] == host]
        assert most_at_once(on_host) == 2, host
    # Both hosts at work at once: more than one host's limit ran together.
    assert most_at_once([(s, e) for _, _, s, e in spans]) > 2
    own = [(s, e) for account, _, s, e in spans if account == first]
    assert len(own) == 2 and most_at_once(own) == 1


def test_unsuspend_first_then_the_oldest(
    tmp_path: Path, sshd: SSHServer, state_url: str, pool_factory: list[PhasePool]
) -> None:
    """One host slot: the queue runs the unsuspend queued last first, then the suspends
    oldest first, then the verify queued first."""
    storm = write_storm(
        tmp_path, [sshd], state_url, accounts=4, sleep_s=0.2, max_parallel=1, one_host=True
    )
    app = storm.app()
    a0, a1, a2, a3 = storm.accounts
    storm.pay([a0, a3])
    app.lifecycle.sync()
    ids = [app.runner.queue.add(a0, "verify")]
    for account_id in (a2, a1):
        lapse(app, account_id)
        ids.append(app.runner.queue.add(account_id, "suspend"))
        time.sleep(0.01)  # distinct queueing instants
    ids.append(app.runner.queue.add(a3, "unsuspend"))

    _pool(app, pool_factory, workers=4)
    wait_for(lambda: _all_done(app, ids), 60, "the queue")

    starts = [
        tuple(line.split()[1:3])
        for line in storm.trace.read_text().splitlines()
        if line.startswith("start ")
    ]
    assert starts == [(a3, "unsuspend"), (a2, "suspend"), (a1, "suspend"), (a0, "verify")]


def _started(storm: Storm, account_id: str) -> bool:
    return f"start {account_id} " in storm.trace.read_text()


def test_a_sync_does_not_wait_behind_a_long_phase(
    tmp_path: Path, sshd: SSHServer, state_url: str
) -> None:
    storm = write_storm(tmp_path, [sshd], state_url, accounts=1, sleep_s=10, releasable=True)
    app = storm.app()
    prepare(storm, app)
    [account_id] = storm.accounts
    scheduler = LapseScheduler(app.engine, app.lifecycle, timedelta(hours=1), app.runner)
    scheduler.start(sync_now=False)
    try:
        wait_for(lambda: _started(storm, account_id), 60, "the long phase to start")
        asked = time.monotonic()
        scheduler.scheduler.modify_job(SYNC_JOB, next_run_time=datetime.now(UTC))
        wait_for(lambda: scheduler.last_sync is not None, 15, "the sync")
        took = time.monotonic() - asked
        assert f"end {account_id} " not in storm.trace.read_text()  # the phase still runs
    finally:
        storm.release()
        scheduler.shutdown()
    assert took < 10


def test_a_payment_is_acted_on_within_a_second_with_every_worker_busy(
    tmp_path: Path, sshd: SSHServer, state_url: str
) -> None:
    """One worker, busy with a long suspension; another suspension waits. A suspended
    client on the other host pays: within a second its unsuspend runs (the reserved
    worker), ahead of the waiting suspension."""
    storm = write_storm(tmp_path, [sshd], state_url, accounts=3, sleep_s=10, releasable=True)
    app = storm.app()
    busy, payer, waiting = storm.accounts  # web1, web2, web1
    prepare(storm, app)
    _suspended_earlier(app, payer)
    with _pool_and_scheduler(app, workers=1) as scheduler:
        wait_for(lambda: _started(storm, busy), 60, "the long phase to start")
        paid = _pay(storm, app, scheduler, payer, "generic:evt-1")
        wait_for(lambda: _unsuspend_started(app, payer), 5, "the unsuspend")
        acted = time.monotonic() - paid
        wait_for(lambda: _started(storm, payer), 30, "the unsuspend's step")
        assert not _started(storm, waiting)  # still queued behind the busy worker
        storm.release()
    assert acted < 1.0


def _suspended_earlier(app: App, payer: str) -> None:
    """Mark the payer's suspension as run before the pool starts."""
    with app.sessions.begin() as session:
        action = session.scalars(
            select(ScheduledAction).where(ScheduledAction.account_id == payer)
        ).one()
        action.status = ActionStatus.DONE


@contextmanager
def _pool_and_scheduler(app: App, workers: int) -> Iterator[LapseScheduler]:
    """A phase pool of `workers` workers and a scheduler acting on payments, running."""
    pool = PhasePool(app.runner, app.config.hosts, workers=workers, lease=timedelta(seconds=30))
    scheduler = LapseScheduler(app.engine, app.lifecycle, timedelta(hours=1), app.runner, pool=pool)
    pool.after_phase = scheduler.payments_due
    pool.start()
    scheduler.start(sync_now=False)
    try:
        yield scheduler
    finally:
        scheduler.shutdown()
        pool.stop(30)


def _pay(storm: Storm, app: App, scheduler: LapseScheduler, payer: str, event: str) -> float:
    """Pay in billing, record the payment event as the webhook does, and hand it to the
    scheduler; return the monotonic time of the payment."""
    storm.pay([payer])
    with app.sessions.begin() as session:
        record_payment(session, event, payer, "generic", app.clock(), known=True)
    paid = time.monotonic()
    scheduler.wake_now(payer)
    return paid


def _unsuspend_started(app: App, account_id: str) -> bool:
    with app.sessions() as session:
        status = session.scalar(
            select(ScheduledAction.status).where(
                ScheduledAction.account_id == account_id, ScheduledAction.name == "unsuspend"
            )
        )
    return status in (ActionStatus.RUNNING, ActionStatus.DONE)


def test_a_payment_on_a_host_at_its_limit_is_acted_on_at_once(
    tmp_path: Path, sshd: SSHServer, state_url: str
) -> None:
    """One host with one slot, busy with a long suspension, another suspension queued
    behind it: a client on that host pays, and its unsuspend starts in the slot the host
    keeps for it (daemon.playbooks.picking.UNSUSPEND_HEADROOM), not after the
    suspension; the queued suspension still waits."""
    storm = write_storm(
        tmp_path,
        [sshd],
        state_url,
        accounts=3,
        sleep_s=10,
        max_parallel=1,
        one_host=True,
        releasable=True,
    )
    app = storm.app()
    busy, payer, waiting = storm.accounts
    prepare(storm, app)
    _suspended_earlier(app, payer)
    with _pool_and_scheduler(app, workers=4) as scheduler:
        wait_for(lambda: _started(storm, busy), 60, "the long phase to start")
        paid = _pay(storm, app, scheduler, payer, "generic:evt-2")
        wait_for(lambda: _started(storm, payer), 10, "the unsuspend's step on the busy host")
        acted = time.monotonic() - paid
        assert f"end {busy} " not in storm.trace.read_text()  # the suspension still runs
        assert not _started(storm, waiting)  # held by the host's limit
        storm.release()
    assert acted < 5.0


def test_a_phase_taken_over_by_another_daemon_stops_here_and_writes_nothing(
    tmp_path: Path, sshd: SSHServer, state_url: str, pool_factory: list[PhasePool]
) -> None:
    """This daemon's lease ran out mid-step (paused, cut off from the database) and
    another daemon resumed the phase: this one must not run the next step, record the
    step it was in, or release the other's claim, even when it is then stopped."""
    storm = write_storm(tmp_path, [sshd], state_url, accounts=1, sleep_s=3.0)
    app = storm.app()
    [action_id] = prepare(storm, app)
    pool = _pool(app, pool_factory, workers=1)
    wait_for(lambda: "start" in storm.trace.read_text(), 30, "the first step to start")
    other = "other-daemon:4242"
    with app.sessions.begin() as session:
        session.execute(
            update(ScheduledAction)
            .where(ScheduledAction.id == action_id)
            .values(claimed_by=other, lease_until=datetime.now(UTC) + timedelta(minutes=10))
        )
    wait_for(lambda: not pool.running_ids(), 30, "the taken-over phase to stop here")

    trace = storm.trace.read_text()
    assert "end " in trace  # the step under way ran to its end on the host
    assert "step2" not in trace  # and nothing after it did
    with app.sessions() as session:
        action = session.get(ScheduledAction, action_id)
        assert action is not None
        assert (action.status, action.claimed_by) == (ActionStatus.RUNNING, other)
        steps = session.scalars(
            select(StepRecord.status)
            .join(PlaybookRun, PlaybookRun.id == StepRecord.run_id)
            .where(PlaybookRun.action_id == action_id)
            .order_by(StepRecord.id)
        ).all()
    # The first step's outcome is the new holder's to write; the second never began.
    assert list(steps) == [StepStatus.RUNNING, StepStatus.PENDING]

    # A shutdown releases only this daemon's own claims.
    account_id = next(iter(storm.accounts))
    app.runner.endings.paused(action_id, account_id, "suspend", owner=pool.owner)
    with app.sessions() as session:
        assert (
            session.scalar(
                select(ScheduledAction.claimed_by).where(ScheduledAction.id == action_id)
            )
            == other
        )
