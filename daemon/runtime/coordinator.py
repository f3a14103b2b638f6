"""One daemon's moving parts, and how they change when it leads or follows.

Every daemon runs a phase pool (daemon.runtime.phase_pool) and beats its heartbeat
(daemon.store.daemons). The leader (daemon.runtime.leadership) also runs the
scheduler: billing syncs, brake decisions, wake-ups and payment events. A daemon
that becomes leader while another one's heartbeat still says it leads waits one
leadership check first, so the former leader has stepped down (stopped its
scheduler) before this one starts: never two schedulers on one job table.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import structlog

from daemon.runtime.app import App
from daemon.runtime.leadership import LEADER_CHECK, Leadership
from daemon.runtime.phase_pool import PhasePool
from daemon.runtime.scheduler import LapseScheduler
from daemon.store.daemons import HEARTBEAT, Heartbeats, daemons, leaders_last_sync

log = structlog.get_logger("lapse.service")


class Coordinator:
    """The phase pool, the heartbeat and (while leading) the scheduler of one daemon."""

    def __init__(self, app: App, leadership: Leadership | None) -> None:
        """Take the wired app and its leadership (None: a lone daemon without a lock,
        an in-memory database's)."""
        self.app = app
        self.leadership = leadership
        settings = app.config.daemon
        self.pool = PhasePool(
            app.runner,
            app.config.hosts,
            workers=settings.workers,
            lease=settings.lease,
            after_phase=self._phase_ended,
        )
        self.heartbeats = Heartbeats(app.sessions, self.pool.owner)
        self.scheduler: LapseScheduler | None = None
        self._next_check = self._next_beat = 0.0
        self._waiting_since: float | None = None

    @property
    def last_sync(self) -> datetime | None:
        """When billing was last synced: by this daemon's scheduler while it leads, else
        by the live leader, as its heartbeat says (None before any sync), so that every
        daemon's /healthz judges the syncs."""
        if self.scheduler is not None:
            return self.scheduler.last_sync
        with self.app.sessions() as session:
            return leaders_last_sync(session, datetime.now(UTC))

    @property
    def sync_failures(self) -> int:
        """How many billing syncs failed since this daemon began to lead (0 while it
        follows)."""
        return self.scheduler.sync_failures if self.scheduler is not None else 0

    def wake_soon(self, account_id: str) -> None:
        """An operator acted on the account in the console (an approval, a retry): the
        leader evaluates it soon, and the pool looks for phases now (an approved phase
        is picked by any daemon's pool)."""
        if self.scheduler is not None:
            self.scheduler.wake_soon(account_id)
        self.pool.kick()

    def wake_now(self, account_id: str) -> None:
        """A payment event was recorded: the leader acts on it now (a follower's is
        found by the leader's payments thread within its poll)."""
        if self.scheduler is not None:
            self.scheduler.wake_now(account_id)

    def start(self) -> None:
        """Deal with what the last run left, start the pool, and lead if the lock is ours.

        Raises StateStoreError when a lone daemon's lock is lost."""
        busy = self.app.runner.queue.busy_accounts()
        delivered = self.app.notices.deliver_pending()
        if delivered:
            log.info("delivered notices left pending by the last run", count=delivered)
        interrupted = self.app.backups.recover_interrupted(busy)
        if interrupted:
            log.warning(
                "backups interrupted by the last stop were marked failed", count=interrupted
            )
        self.pool.start()
        self.tick()
        log.info(
            "lapse running",
            state=self.app.engine.url.render_as_string(hide_password=True),
            sync_interval=str(self.app.config.daemon.sync_interval),
            workers=self.app.config.daemon.workers,
            leader=self.scheduler is not None,
        )

    def tick(self) -> None:
        """Beat the heartbeat and confirm leadership when due; start or stop the
        scheduler as leadership comes or goes. Raises StateStoreError as `start`."""
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + LEADER_CHECK
            leads = self.leadership is None or self.leadership.refresh()
            if leads and self.scheduler is None:
                self._lead(now)
            elif not leads and self.scheduler is not None:
                self._follow()
        if now >= self._next_beat:
            self._next_beat = now + HEARTBEAT.total_seconds()
            try:
                synced = self.scheduler.last_sync if self.scheduler is not None else None
                self.heartbeats.beat(
                    self.scheduler is not None, self.pool.figures().running, synced
                )
            except Exception:  # the database away for a moment: the next beat says it
                log.exception("could not write this daemon's heartbeat")

    def _lead(self, now: float) -> None:
        if self._former_leader_alive():
            if self._waiting_since is None:
                self._waiting_since = now
            if now - self._waiting_since < 2 * LEADER_CHECK:
                return  # the former leader steps down at its next check
        self._waiting_since = None
        settings = self.app.config.daemon
        scheduler = LapseScheduler(
            self.app.engine,
            self.app.lifecycle,
            settings.sync_interval,
            self.app.runner,
            pool=self.pool,
            stop_timeout=settings.stop_timeout,
        )
        scheduler.start()
        self.scheduler = scheduler
        log.info("leading: syncs, brake decisions, wake-ups and payments run here")

    def _follow(self) -> None:
        assert self.scheduler is not None
        log.warning("stepping down: another daemon leads; this one runs phases only")
        self.scheduler.shutdown()
        self.scheduler = None

    def _former_leader_alive(self) -> bool:
        """Whether another daemon's heartbeat says it leads and is recent."""
        with self.app.sessions() as session:
            rows = daemons(session, datetime.now(UTC))
        return any(row.leader and row.alive and row.id != self.pool.owner for row in rows)

    def _phase_ended(self) -> None:
        if self.scheduler is not None:
            self.scheduler.payments_due()

    def shutdown(self) -> None:
        """Stop the scheduler, let running steps finish up to `daemon.stop_timeout`
        (each phase's progress is recorded; it resumes at the next start), say goodbye."""
        if self.scheduler is not None:
            self.scheduler.shutdown()
            self.scheduler = None
        self.pool.stop(self.app.config.daemon.stop_timeout.total_seconds())
        try:
            self.heartbeats.forget()
        except Exception:
            log.exception("could not remove this daemon's heartbeat")
        if self.leadership is not None:
            self.leadership.release()
