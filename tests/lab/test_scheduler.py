"""The APScheduler wiring against a real state DB: wake-ups derived from the accounts table."""

from __future__ import annotations

import gc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select, update
from structlog.testing import capture_logs

from daemon.domain.clock import system_clock
from daemon.lifecycle.report import SyncReport
from daemon.runtime import collector
from daemon.runtime.scheduler import SYNC_JOB, LapseScheduler
from daemon.store.models import Account, Event
from tests.e2e.daemon_process import wait_for
from tests.lab.engine_helpers import account, make_app, write_billing

DAY = timedelta(days=1)


def _app(tmp_path: Path, state_url: str, due: datetime):  # type: ignore[no-untyped-def]
    write_billing(tmp_path / "billing.json", [account("acme", due)])
    return make_app(tmp_path, state_url, system_clock, anytime=True)  # type: ignore[arg-type]


def _labels(app) -> list[str]:  # type: ignore[no-untyped-def]
    with app.sessions() as session:
        return list(session.scalars(select(Event.to_state).order_by(Event.id)))


def test_missed_deadline_after_downtime_runs_once_at_start(tmp_path: Path, state_url: str) -> None:
    """The account's reminder fell due while the daemon was down: at start the
    wake-up is rebuilt from the DB and runs once, promptly."""
    now = datetime.now(UTC)
    app = _app(tmp_path, state_url, now + 2 * DAY)
    app.lifecycle.sync()  # due in two days: nothing yet, a wake-up at the due date
    with app.sessions() as session:
        assert session.scalar(select(Account.next_wake_at)) == now + 2 * DAY
    # Downtime: the due date and the first reminder date both passed.
    write_billing(tmp_path / "billing.json", [account("acme", now - 4 * DAY)])
    with app.engine.begin() as connection:
        connection.execute(update(Account).values(next_wake_at=now - 3 * DAY))
    scheduler = LapseScheduler(app.engine, app.lifecycle, timedelta(hours=1))
    scheduler.start(sync_now=False)
    try:
        assert "wake:acme" in {job.id for job in scheduler.scheduler.get_jobs()}
        wait_for(lambda: _labels(app) == ["overdue", "reminded"], 20, "the missed wake-up")
    finally:
        scheduler.shutdown()
    assert _labels(app) == ["overdue", "reminded"]


def test_start_schedules_a_sync_and_rebuilds_wakeups(tmp_path: Path, state_url: str) -> None:
    now = datetime.now(UTC)
    app = _app(tmp_path, state_url, now - 4 * DAY)
    scheduler = LapseScheduler(app.engine, app.lifecycle, timedelta(minutes=30))
    with capture_logs() as logs:
        scheduler.start()
        try:
            wait_for(lambda: scheduler.last_sync is not None, 20, "the first sync")
            jobs = {job.id: job.next_run_time for job in scheduler.scheduler.get_jobs()}
        finally:
            scheduler.shutdown()
    assert SYNC_JOB in jobs
    # The next reminder (day 10 after due) is beyond the one-hour horizon: no wake-up yet.
    assert "wake:acme" not in jobs
    transitions = [entry for entry in logs if entry["event"] == "transition"]
    assert [(t["account"], t["to_state"]) for t in transitions] == [
        ("acme", "overdue"),
        ("acme", "reminded(1)"),
    ]
    assert all(t["reason"] for t in transitions)
    # A restarted scheduler on the same DB finds its sync job and no stale wake-ups.
    again = LapseScheduler(app.engine, app.lifecycle, timedelta(minutes=30))
    again.scheduler.start(paused=True)
    try:
        assert {job.id for job in again.scheduler.get_jobs()} == {SYNC_JOB}
    finally:
        again.scheduler.shutdown(wait=False)


def test_a_sync_runs_with_the_collector_spaced_and_leaves_it_as_it_was(
    tmp_path: Path, state_url: str
) -> None:
    app = _app(tmp_path, state_url, datetime.now(UTC) - 4 * DAY)
    scheduler = LapseScheduler(app.engine, app.lifecycle, timedelta(hours=1))
    sync: Callable[[], SyncReport] = app.lifecycle.sync
    seen: list[tuple[int, int, int]] = []

    def watched() -> SyncReport:
        seen.append(gc.get_threshold())
        return sync()

    app.lifecycle.sync = watched
    before = gc.get_threshold()
    scheduler.sync()
    assert seen == [(collector.SYNC_YOUNG_THRESHOLD, *before[1:])]
    assert gc.get_threshold() == before
    assert _labels(app) == ["overdue", "reminded"]  # the sync itself ran
