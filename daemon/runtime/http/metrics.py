"""Prometheus metrics, read from the state database at each scrape.

Reading at scrape time keeps one source of truth (the DB, which a CLI command may
also change) and costs a few grouped queries every scrape interval.

Names follow Prometheus conventions: the unit last (`_seconds`, `_bytes`), `_total`
only on counters, and a count of rows by status is a gauge (a row moves from one
status to another, so no single series only grows). Every label value that can exist
is exported, at 0 when nothing has it, so a dashboard or an alert never meets an
absent series: every lifecycle state, every playbook phase. docs/monitoring.md lists
them; monitoring/ ships a Grafana dashboard and alert rules that use them, and
tests/unit/test_monitoring.py checks that every name those use is exported here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any, TypeVar

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from daemon.domain.clock import Clock, system_clock
from daemon.domain.states import BackupStatus, State
from daemon.lifecycle.brake import brake_status
from daemon.lifecycle.waiting import Waiting
from daemon.store.models import Account, Backup, Correspondence, ScheduledAction, StepRecord
from daemon.store.work_queue import WorkQueue

Family = TypeVar("Family", CounterMetricFamily, GaugeMetricFamily)


class LapseCollector(Collector):
    """Accounts per state, the queue, phases and steps by outcome, backups, notices, the
    brake, billing syncs."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        last_sync: Callable[[], datetime | None],
        *,
        sync_failures: Callable[[], int] = lambda: 0,
        clock: Clock = system_clock,
    ) -> None:
        """Read `sessions`' state database; `last_sync` and `sync_failures` tell the
        daemon's last successful billing sync and its failed syncs since it started."""
        self.sessions = sessions
        self.last_sync = last_sync
        self.sync_failures = sync_failures
        self.clock = clock
        self.waiting = Waiting(sessions)

    def collect(self) -> Iterator[Metric]:
        """Yield every metric family (called by the registry at each scrape)."""
        with self.sessions() as session:
            yield from self._accounts(session)
            yield from self._actions(session)
            yield from self._backups(session)
            yield from self._notices(session)
        yield from self._queue()
        yield from self._brake()
        yield from self._syncs()
        yield from self._work_queue()

    def _work_queue(self) -> Iterator[Metric]:
        """The phases queued and running per phase and host (across daemons), the
        oldest wait, and the daemons with their roles."""
        figures = WorkQueue(self.sessions).figures()
        queued = GaugeMetricFamily(
            "lapse_phases_queued", "Playbook phases due and waiting.", labels=["phase", "host"]
        )
        running = GaugeMetricFamily(
            "lapse_phases_running", "Playbook phases running now.", labels=["phase", "host"]
        )
        for family, counts in ((queued, figures.queued), (running, figures.running)):
            for (phase, host), count in sorted(counts.items()):
                family.add_metric([phase, host], count)
            yield family
        oldest = GaugeMetricFamily(
            "lapse_phase_oldest_wait_seconds", "How long the oldest due phase has waited."
        )
        oldest.add_metric([], figures.oldest_wait_s or 0.0)
        yield oldest
        alive = GaugeMetricFamily(
            "lapse_daemons",
            "Daemons on this state database by role and heartbeat.",
            labels=["daemon", "role", "alive"],
        )
        for daemon in figures.daemons:
            role = "leader" if daemon.leader else "follower"
            alive.add_metric([daemon.id, role, str(daemon.alive).lower()], 1)
        yield alive

    def _accounts(self, session: Session) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "lapse_accounts", "Accounts per lifecycle state.", labels=["state"]
        )
        query = select(Account.state, func.count()).group_by(Account.state)
        counts = {str(state): number for state, number in session.execute(query)}
        for state in State:
            family.add_metric([state.value], counts.get(state.value, 0))
        yield family

    def _actions(self, session: Session) -> Iterator[Metric]:
        phases = GaugeMetricFamily(
            "lapse_playbook_phases",
            "Playbook phases queued by transitions and operators, by phase and status.",
            labels=["phase", "status"],
        )
        yield _counted(session, phases, ScheduledAction.name, ScheduledAction.status)
        steps = GaugeMetricFamily(
            "lapse_playbook_steps", "Playbook steps by type and status.", labels=["type", "status"]
        )
        yield _counted(session, steps, StepRecord.type, StepRecord.status)

    def _backups(self, session: Session) -> Iterator[Metric]:
        count = GaugeMetricFamily("lapse_backups", "Backups by status.", labels=["status"])
        yield _counted(session, count, Backup.status)
        size = GaugeMetricFamily(
            "lapse_backup_size_bytes", "Bytes stored by backups, by status.", labels=["status"]
        )
        for status, total in session.execute(
            select(Backup.status, func.coalesce(func.sum(Backup.size_bytes), 0)).group_by(
                Backup.status
            )
        ):
            size.add_metric([status], float(total or 0))
        yield size
        # Durations are computed here rather than in SQL: date arithmetic differs
        # between SQLite and PostgreSQL, and there is one row per backup, not per byte.
        longest: dict[BackupStatus, float] = {}
        for status, started, finished in session.execute(
            select(Backup.status, Backup.created_at, Backup.completed_at).where(
                Backup.completed_at.is_not(None)
            )
        ):
            if finished is None:  # excluded by the query; narrows the type
                continue
            seconds = (finished - started).total_seconds()
            longest[status] = max(seconds, longest.get(status, 0.0))
        duration = GaugeMetricFamily(
            "lapse_backup_max_duration_seconds",
            "The longest backup so far, by status.",
            labels=["status"],
        )
        for status, seconds in longest.items():
            duration.add_metric([status], seconds)
        yield duration

    def _notices(self, session: Session) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "lapse_notices", "Client notices by kind and status.", labels=["kind", "status"]
        )
        yield _counted(session, family, Correspondence.notice, Correspondence.status)

    def _queue(self) -> Iterator[Metric]:
        queues = self.waiting.phases(self.clock())
        yield _gauge(
            "lapse_queue_depth",
            "Playbook phases waiting to run, by phase.",
            ((q.phase, q.depth) for q in queues),
            "phase",
        )
        yield _gauge(
            "lapse_queue_oldest_age_seconds",
            "How long the waiting phase due first has been due, by phase (0: none due).",
            ((q.phase, q.oldest_age.total_seconds()) for q in queues),
            "phase",
        )
        notices = GaugeMetricFamily(
            "lapse_notices_waiting", "Client notices written and not delivered yet."
        )
        notices.add_metric([], self.waiting.notices())
        yield notices
        approvals = GaugeMetricFamily(
            "lapse_approvals_waiting", "Phases waiting for a person's approval."
        )
        approvals.add_metric([], self.waiting.approvals())
        yield approvals

    def _brake(self) -> Iterator[Metric]:
        engaged = brake_status(self.sessions)
        family = GaugeMetricFamily(
            "lapse_safety_brake_engaged",
            "1 while the safety brake holds the lifecycle (until `lapse brake release`).",
        )
        family.add_metric([], 1 if engaged else 0)
        yield family

    def _syncs(self) -> Iterator[Metric]:
        synced = GaugeMetricFamily(
            "lapse_last_successful_sync_timestamp_seconds",
            "When the last billing sync succeeded (Unix time; absent before the first).",
        )
        moment = self.last_sync()
        if moment is not None:
            synced.add_metric([], moment.timestamp())
        yield synced
        failures = CounterMetricFamily(
            "lapse_sync_failures", "Billing syncs that failed since the daemon started."
        )
        failures.add_metric([], self.sync_failures())
        yield failures


def _gauge(
    name: str, documentation: str, values: Iterable[tuple[str, float]], label: str
) -> GaugeMetricFamily:
    """Return a gauge family with one sample per (label value, value)."""
    family = GaugeMetricFamily(name, documentation, labels=[label])
    for label_value, value in values:
        family.add_metric([label_value], value)
    return family


def _counted(session: Session, family: Family, *columns: Any) -> Family:
    """Fill `family` with one sample per distinct value of `columns` (the labels, in
    order), each the number of rows having it; returns the family."""
    for *labels, number in session.execute(select(*columns, func.count()).group_by(*columns)):
        family.add_metric([str(label) for label in labels], number)
    return family


def make_registry(collector: LapseCollector) -> CollectorRegistry:
    """Return a registry holding only Lapse's collector (no process defaults twice)."""
    registry = CollectorRegistry()
    registry.register(collector)
    return registry
