"""APScheduler 3.x wiring: the periodic billing sync and a date wake-up per deadline.

Jobs live in the state database (SQLAlchemyJobStore), but they are only
wake-ups: the accounts table is the source of truth, and `reconcile()` derives
the jobs from it at start and after every sync. Only deadlines inside a
horizon are scheduled, so the job table stays small however many accounts
there are; later deadlines are picked up by a later reconcile, well before
they fall due.

Payment events are the exception that must not wait or be lost: the listener
records them in the state database, and a thread of their own acts on the pending
ones at once, every PAYMENT_POLL seconds (one a listener of another daemon recorded)
and at start (one recorded before a crash). An account whose phase runs is left to
that phase, which stops for the payment at its next look (invariant 2); its end
looks again.

Playbook phases run in a worker pool (daemon.runtime.phase_pool), never in the
scheduler's thread: a job that queues a phase only kicks the pool, so a sync or a
wake-up never waits behind a phase, nor a payment behind either.

Only one scheduler may use the job table (APScheduler 3 forbids sharing a job store
between schedulers): with several daemons on one PostgreSQL database, only the
leader starts one (daemon.runtime.leadership).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

import structlog
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Engine, select
from sqlalchemy.orm.exc import StaleDataError

from daemon.billing.base import BillingError
from daemon.lifecycle.engine import LifecycleEngine, SyncReport
from daemon.playbooks.runner import PlaybookRunner
from daemon.runtime import collector
from daemon.runtime.phase_pool import PhasePool
from daemon.store import payment_events as payments
from daemon.store.models import Account

log = structlog.get_logger("lapse.scheduler")

SYNC_JOB = "billing-sync"
WAKE_PREFIX = "wake:"
# How often the payments thread looks for events recorded by another daemon's listener.
PAYMENT_POLL = 0.5
# Tries of an evaluation that met another writer's change of the same account
# (optimistic locking: the later writer reads again and retries).
_CONFLICT_TRIES = 3

T = TypeVar("T")

# Persistent jobs are stored as "module:function" references, so the functions
# they call must be module-level; they find the running engine here.
_current: LapseScheduler | None = None


def run_sync() -> None:
    """Job entry point: one full billing sync."""
    if _current is not None:
        _current.sync()


def run_wake(account_id: str) -> None:
    """Job entry point: evaluate one account at its deadline."""
    if _current is not None:
        _current.wake(account_id)


def run_payments() -> None:
    """Job entry point of earlier releases (a stored job may still name it): look for
    payment events now."""
    if _current is not None:
        _current.wake_now("")


class LapseScheduler:
    """Owns the APScheduler instance and keeps its jobs in step with the accounts table."""

    def __init__(
        self,
        engine: Engine,
        lifecycle: LifecycleEngine,
        sync_interval: timedelta,
        runner: PlaybookRunner | None = None,
        *,
        pool: PhasePool | None = None,
        stop_timeout: timedelta = timedelta(seconds=60),
    ):
        """Take the state database, the lifecycle, the sync interval and where queued
        phases run: `pool` (the daemon's, which it starts and stops itself), or a pool
        of the runner's own that this scheduler starts and stops (waiting up to
        `stop_timeout` for its phases), or none (no phases run)."""
        self.lifecycle = lifecycle
        self.runner = runner
        self._own_pool = pool is None and runner is not None
        if pool is None and runner is not None:
            pool = PhasePool(runner, runner.hosts, after_phase=self.payments_due)
        self.pool = pool
        self.stop_timeout = stop_timeout
        self.sync_interval = sync_interval
        self.horizon = max(2 * sync_interval, timedelta(hours=1))
        self.last_sync: datetime | None = None
        self.last_report: SyncReport | None = None
        # Failed billing syncs since start: /metrics exports it, /healthz reports it.
        self.sync_failures = 0
        # Held while a job runs. APScheduler's shutdown holds its job-store lock while
        # it waits for running jobs, and a running job re-arms wake-ups through that
        # lock: so shutdown first waits here for the job, then stops the scheduler.
        self._busy = threading.Lock()
        self._stopping = False
        self._payment_kick = threading.Event()
        self._payment_stop = threading.Event()
        self._payment_thread: threading.Thread | None = None
        # A payment look from the payments thread and one from a job never overlap.
        self._payment_lock = threading.Lock()
        self.scheduler = BackgroundScheduler(
            jobstores={"default": SQLAlchemyJobStore(engine=engine)},
            # One worker for syncs and wake-ups: evaluations never overlap each other.
            executors={"default": ThreadPoolExecutor(max_workers=1)},
            # After downtime a missed job runs once (coalesced), however late.
            job_defaults={"coalesce": True, "misfire_grace_time": None, "max_instances": 1},
            timezone="UTC",
        )

    def start(self, *, sync_now: bool = True) -> None:
        """Start the scheduler: wake-ups rebuilt from the DB, and a billing sync every
        interval, the first one right away unless `sync_now` is false."""
        global _current
        _current = self
        self.scheduler.start(paused=True)
        self.scheduler.add_job(
            "daemon.runtime.scheduler:run_sync",
            "interval",
            seconds=self.sync_interval.total_seconds(),
            next_run_time=self.lifecycle.clock()
            + (timedelta(0) if sync_now else self.sync_interval),
            id=SYNC_JOB,
            replace_existing=True,
        )
        self.reconcile()
        if self._own_pool and self.pool is not None:
            self.pool.start()
        # Payments recorded before a crash or a stop are acted on first thing.
        self._payment_kick.set()
        self._payment_thread = threading.Thread(
            target=self._watch_payments, name="lapse-payments", daemon=True
        )
        self._payment_thread.start()
        self.scheduler.resume()
        self._kick_phases()  # phases queued, or left running, before the start

    def shutdown(self) -> None:
        """Stop taking jobs, let the running one finish (its progress is committed), stop;
        a pool of its own stops too (see PhasePool.stop)."""
        global _current
        self._stopping = True
        self._payment_stop.set()
        self._payment_kick.set()
        if self._payment_thread is not None:
            self._payment_thread.join()
        with self._busy:
            pass  # the running job has finished; any later one returns at once
        if self._own_pool and self.pool is not None:
            self.pool.stop(self.stop_timeout.total_seconds())
        self.scheduler.shutdown(wait=True)
        _current = None

    def sync(self) -> None:
        """Run a full billing sync, then bring wake-ups in line. Failures are logged, not raised."""
        with self._busy:
            if not self._stopping:
                self._sync()
                self.payments_due()

    def wake(self, account_id: str) -> None:
        """Evaluate one account at its deadline, then re-arm its wake-up."""
        with self._busy:
            if not self._stopping:
                self._wake(account_id)
                self.payments_due()

    def payments(self) -> None:
        """Evaluate, with a fresh billing read, every account with a pending payment event
        (but one whose phase runs: that phase acts on it)."""
        if not self._stopping:
            self._act_on_payments()

    def _watch_payments(self) -> None:
        """The payments thread: act on pending events when kicked and every PAYMENT_POLL."""
        while not self._payment_stop.is_set():
            self._payment_kick.wait(PAYMENT_POLL)
            self._payment_kick.clear()
            if self._payment_stop.is_set():
                return
            try:
                self._act_on_payments()
            except Exception:  # a lost connection must not end the thread; the next look retries
                log.exception("could not act on payment events; trying again")

    def payments_due(self) -> None:
        """Look for payment events now (a phase ended: one may have waited for it)."""
        self._payment_kick.set()

    def _sync(self) -> None:
        try:
            with collector.spaced():  # see daemon.runtime.collector
                self.last_report = _retrying(self.lifecycle.sync)
            self.last_sync = self.lifecycle.clock()
        except BillingError as error:
            self.sync_failures += 1
            log.error("billing sync failed; will retry at the next interval", error=str(error))
            return
        except StaleDataError as error:
            log.error("billing sync kept meeting concurrent changes; will retry", error=str(error))
            return
        self.reconcile()
        self._kick_phases()

    def _wake(self, account_id: str, actor: str = "wake-up") -> bool:
        """Evaluate the account and run what it queued; return whether billing was read."""
        # On a billing failure, try again in five minutes.
        try:
            report = _retrying(lambda: self.lifecycle.wake(account_id, actor=actor))
        except (BillingError, StaleDataError) as error:
            retry = self.lifecycle.clock() + timedelta(minutes=5)
            log.error("wake-up could not read billing", account=account_id, error=str(error))
            self._schedule_wake(account_id, retry)
            return False
        for wake_id, moment in report.wakeups.items():
            self._schedule_wake(wake_id, moment)
        self._kick_phases()
        return True

    def _act_on_payments(self) -> None:
        """Evaluate each account with pending payment events until none is left, then mark
        the events it was evaluated for as handled. One whose billing cannot be read keeps
        its events pending: its wake-up retries in five minutes and acts on them then.
        An account whose phase runs (in any daemon) is left to that phase's payment look;
        the phase's end brings this look back."""
        tried: set[str] = set()
        with self._payment_lock:
            while True:
                pending = payments.pending_by_account(self.lifecycle.sessions)
                if not pending:
                    return
                busy = self.runner.queue.busy_accounts() if self.runner is not None else set()
                todo = {
                    account: keys
                    for account, keys in pending.items()
                    if account not in tried and account not in busy
                }
                if not todo:
                    return
                for account_id, keys in todo.items():
                    tried.add(account_id)
                    log.info("acting on recorded payment", account=account_id, events=keys)
                    if self._wake(account_id, actor="payment"):
                        payments.mark_handled(self.lifecycle.sessions, keys, self.lifecycle.clock())

    def _kick_phases(self) -> None:
        """Tell the pool phases may have been queued."""
        if self.pool is not None:
            self.pool.kick()

    def reconcile(self) -> int:
        """Make the wake-up jobs match the accounts' next deadlines within the horizon.

        Returns the number of wake-up jobs now scheduled.
        """
        limit = self.lifecycle.clock() + self.horizon
        with self.lifecycle.sessions() as session:
            due = dict(
                session.execute(
                    select(Account.id, Account.next_wake_at).where(Account.next_wake_at <= limit)
                ).all()
            )
        for job in self.scheduler.get_jobs():
            account_id = job.id.removeprefix(WAKE_PREFIX)
            if job.id.startswith(WAKE_PREFIX) and account_id not in due:
                job.remove()
        for account_id, moment in due.items():
            self._schedule_wake(account_id, moment)
        return len(due)

    def wake_now(self, account_id: str) -> None:
        """Act on recorded payment events now (one arrived for the account and is recorded).

        The payments thread does it, not a job: a job would wait behind a sync or a
        wake-up, and re-arming the account's wake-up would lose the request while that
        very job runs. A phase of the account that runs meanwhile finds the recorded
        event itself.
        """
        log.debug("payment wake-up requested", account=account_id)
        self._payment_kick.set()

    def _schedule_wake(self, account_id: str, moment: datetime | None) -> None:
        job_id = WAKE_PREFIX + account_id
        if moment is None:
            if self.scheduler.get_job(job_id) is not None:
                self.scheduler.remove_job(job_id)
            return
        existing = self.scheduler.get_job(job_id)
        if existing is not None and existing.next_run_time == moment:
            return
        self.scheduler.add_job(
            "daemon.runtime.scheduler:run_wake",
            "date",
            run_date=moment,
            args=[account_id],
            id=job_id,
            replace_existing=True,
        )

    def wake_soon(self, account_id: str) -> None:
        """Evaluate the account and run what it has queued as soon as the worker is free
        (an operator acted on it in the console). Its next deadline is re-armed after."""
        self._schedule_wake(account_id, self.lifecycle.clock())


def _retrying(evaluate: Callable[[], T]) -> T:
    """Run `evaluate`, again when it met a concurrent change of the same account (a phase
    or another daemon wrote it between the read and the write); raises the last
    StaleDataError after _CONFLICT_TRIES tries."""
    for attempt in range(_CONFLICT_TRIES):
        try:
            return evaluate()
        except StaleDataError:
            if attempt == _CONFLICT_TRIES - 1:
                raise
            log.info("an account changed under an evaluation; reading it again")
    raise AssertionError("unreachable")
