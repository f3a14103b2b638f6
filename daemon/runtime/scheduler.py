"""APScheduler 3.x wiring: the periodic billing sync and a date wake-up per deadline.

Jobs live in the state database (SQLAlchemyJobStore), but they are only
wake-ups: the accounts table is the source of truth, and `reconcile()` derives
the jobs from it at start and after every sync. Only deadlines inside a
horizon are scheduled, so the job table stays small however many accounts
there are; later deadlines are picked up by a later reconcile, well before
they fall due.

Payment events are the exception that must not wait or be lost: the listener
records them in the state database, and every job ends by acting on the pending
ones (an event that arrived while its own account's job ran included), as does
the start (one recorded before a crash).
"""

from __future__ import annotations

import threading
import uuid
from datetime import datetime, timedelta

import structlog
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Engine, select

from daemon.billing.base import BillingError
from daemon.lifecycle.engine import LifecycleEngine, SyncReport
from daemon.playbooks.runner import PlaybookRunner
from daemon.store import payment_events as payments
from daemon.store.models import Account

log = structlog.get_logger("lapse.scheduler")

SYNC_JOB = "billing-sync"
WAKE_PREFIX = "wake:"
PAYMENTS_PREFIX = "payments:"

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
    """Job entry point: act on the recorded payment events not yet acted on."""
    if _current is not None:
        _current.payments()


class LapseScheduler:
    """Owns the APScheduler instance and keeps its jobs in step with the accounts table."""

    def __init__(
        self,
        engine: Engine,
        lifecycle: LifecycleEngine,
        sync_interval: timedelta,
        runner: PlaybookRunner | None = None,
    ):
        self.lifecycle = lifecycle
        # Runs the playbook phases transitions queued, in the same worker as the
        # evaluations: a phase never overlaps an evaluation of its account.
        self.runner = runner
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
        self.scheduler = BackgroundScheduler(
            jobstores={"default": SQLAlchemyJobStore(engine=engine)},
            # One worker: evaluations of the same account never overlap.
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
        # Payments recorded before a crash or a stop are acted on first thing.
        if payments.pending_by_account(self.lifecycle.sessions):
            self._schedule_payments()
        self.scheduler.resume()

    def shutdown(self) -> None:
        """Stop taking jobs, let the running one finish (its progress is committed), stop."""
        global _current
        self._stopping = True
        with self._busy:
            pass  # the running job has finished; any later one returns at once
        self.scheduler.shutdown(wait=True)
        _current = None

    def sync(self) -> None:
        """Run a full billing sync, then bring wake-ups in line. Failures are logged, not raised."""
        with self._busy:
            if not self._stopping:
                self._sync()
                self._act_on_payments()

    def wake(self, account_id: str) -> None:
        """Evaluate one account at its deadline, then re-arm its wake-up."""
        with self._busy:
            if not self._stopping:
                self._wake(account_id)
                self._act_on_payments()

    def payments(self) -> None:
        """Evaluate, with a fresh billing read, every account with a pending payment event."""
        with self._busy:
            if not self._stopping:
                self._act_on_payments()

    def _sync(self) -> None:
        try:
            self.last_report = self.lifecycle.sync()
            self.last_sync = self.lifecycle.clock()
        except BillingError as error:
            self.sync_failures += 1
            log.error("billing sync failed; will retry at the next interval", error=str(error))
            return
        self.reconcile()
        self._run_playbooks()

    def _wake(self, account_id: str, actor: str = "wake-up") -> bool:
        """Evaluate the account and run what it queued; return whether billing was read."""
        # On a billing failure, try again in five minutes.
        try:
            report = self.lifecycle.wake(account_id, actor=actor)
        except BillingError as error:
            retry = self.lifecycle.clock() + timedelta(minutes=5)
            log.error("wake-up could not read billing", account=account_id, error=str(error))
            self._schedule_wake(account_id, retry)
            return False
        for wake_id, moment in report.wakeups.items():
            self._schedule_wake(wake_id, moment)
        self._run_playbooks()
        return True

    def _act_on_payments(self) -> None:
        """Evaluate each account with pending payment events until none is left, then mark
        the events it was evaluated for as handled. One whose billing cannot be read keeps
        its events pending: its wake-up retries in five minutes and acts on them then."""
        tried: set[str] = set()
        while True:
            pending = payments.pending_by_account(self.lifecycle.sessions)
            todo = {account: keys for account, keys in pending.items() if account not in tried}
            if not todo:
                return
            for account_id, keys in todo.items():
                tried.add(account_id)
                log.info("acting on recorded payment", account=account_id, events=keys)
                if self._wake(account_id, actor="payment"):
                    payments.mark_handled(self.lifecycle.sessions, keys, self.lifecycle.clock())

    def _run_playbooks(self) -> None:
        if self.runner is not None:
            self.runner.run_pending()

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
        """Evaluate the account as soon as the worker is free (a payment event arrived and
        is recorded).

        A job of its own, with an id of its own: re-arming the account's wake-up instead
        would lose the request while that very job runs (APScheduler skips a job whose
        previous run is still going). A phase of the account that runs meanwhile finds
        the recorded event itself, and every job ends by acting on pending events.
        """
        log.debug("payment wake-up requested", account=account_id)
        self._schedule_payments()

    def _schedule_payments(self) -> None:
        self.scheduler.add_job(
            "daemon.runtime.scheduler:run_payments",
            "date",
            run_date=self.lifecycle.clock(),
            id=PAYMENTS_PREFIX + uuid.uuid4().hex,
        )

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
