"""Prometheus metrics, read from the state database at each scrape.

Reading at scrape time keeps one source of truth (the DB, which a CLI command may
also change) and costs a few grouped queries every scrape interval.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, TypeVar

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from daemon.domain.states import BackupStatus
from daemon.store.models import Account, Backup, Correspondence, ScheduledAction, StepRecord
from daemon.store.work_queue import WorkQueue

Family = TypeVar("Family", CounterMetricFamily, GaugeMetricFamily)


class LapseCollector(Collector):
    """Accounts per state, actions and failures by type, backups, notices, last sync."""

    def __init__(
        self, sessions: sessionmaker[Session], last_sync: Callable[[], datetime | None]
    ) -> None:
        self.sessions = sessions
        self.last_sync = last_sync

    def collect(self) -> Iterator[Metric]:
        """Yield every metric family (called by the registry at each scrape)."""
        with self.sessions() as session:
            yield from self._accounts(session)
            yield from self._actions(session)
            yield from self._backups(session)
            yield from self._notices(session)
        yield from self._queue()
        synced = GaugeMetricFamily(
            "lapse_last_successful_sync_timestamp_seconds",
            "When the last billing sync succeeded (Unix time).",
        )
        moment = self.last_sync()
        if moment is not None:
            synced.add_metric([], moment.timestamp())
        yield synced

    def _queue(self) -> Iterator[Metric]:
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
        yield _counted(session, family, Account.state)

    def _actions(self, session: Session) -> Iterator[Metric]:
        actions = CounterMetricFamily(
            "lapse_actions", "Playbook phases by phase and outcome.", labels=["phase", "status"]
        )
        yield _counted(session, actions, ScheduledAction.name, ScheduledAction.status)
        steps = CounterMetricFamily(
            "lapse_steps", "Playbook steps by type and outcome.", labels=["type", "status"]
        )
        yield _counted(session, steps, StepRecord.type, StepRecord.status)

    def _backups(self, session: Session) -> Iterator[Metric]:
        count = CounterMetricFamily("lapse_backups", "Backups by outcome.", labels=["status"])
        yield _counted(session, count, Backup.status)
        size = CounterMetricFamily(
            "lapse_backup_bytes", "Bytes stored by backups, by outcome.", labels=["status"]
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
            "lapse_backup_duration_seconds_max",
            "The longest backup so far, by outcome.",
            labels=["status"],
        )
        for status, seconds in longest.items():
            duration.add_metric([status], seconds)
        yield duration

    def _notices(self, session: Session) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "lapse_notices", "Client notices by kind and outcome.", labels=["kind", "status"]
        )
        yield _counted(session, family, Correspondence.notice, Correspondence.status)


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
