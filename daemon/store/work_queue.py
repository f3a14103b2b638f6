"""The queue of playbook phases as operators see it: what waits, what runs, who runs it.

Read by `lapse status` (through daemon.runtime.app.open_readers) and /metrics: the
phases queued and running per phase and host, how long the oldest due one has
waited, and the daemons alive with the one that leads (daemon.store.daemons).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from daemon.domain.states import ActionStatus
from daemon.store.daemons import DaemonView, daemons
from daemon.store.models import ScheduledAction
from daemon.store.records import split_hosts

# How a phase without a host is shown.
NO_HOST = "-"


@dataclass
class QueueFigures:
    """The phase queue at one moment."""

    queued: Counter[tuple[str, str]] = field(default_factory=Counter)  # (phase, host) -> n
    running: Counter[tuple[str, str]] = field(default_factory=Counter)
    oldest_wait_s: float | None = None
    daemons: list[DaemonView] = field(default_factory=list)

    @property
    def leader(self) -> DaemonView | None:
        """The daemon alive that leads, if any."""
        return next((d for d in self.daemons if d.leader and d.alive), None)


class WorkQueue:
    """Reads the phase queue of one state database."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def figures(self, now: datetime | None = None) -> QueueFigures:
        """Return the queue as it stands at `now` (the wall clock by default)."""
        now = now or datetime.now(UTC)
        figures = QueueFigures()
        playbook = ScheduledAction.kind == "playbook"
        with self.sessions() as session:
            due = (playbook, ScheduledAction.status == ActionStatus.PENDING)
            for phase, hosts, count in session.execute(
                select(ScheduledAction.name, ScheduledAction.hosts, func.count())
                .where(*due, ScheduledAction.due_at <= now)
                .group_by(ScheduledAction.name, ScheduledAction.hosts)
            ):
                _count(figures.queued, phase, hosts, count)
            live = or_(
                ScheduledAction.lease_until >= now,
                ScheduledAction.lease_until.is_(None) & ScheduledAction.claimed_by.is_not(None),
            )
            for phase, hosts, count in session.execute(
                select(ScheduledAction.name, ScheduledAction.hosts, func.count())
                .where(playbook, ScheduledAction.status == ActionStatus.RUNNING, live)
                .group_by(ScheduledAction.name, ScheduledAction.hosts)
            ):
                _count(figures.running, phase, hosts, count)
            oldest = session.scalar(
                select(func.min(ScheduledAction.created_at)).where(
                    *due, ScheduledAction.due_at <= now
                )
            )
            figures.daemons = daemons(session, now)
        if oldest is not None:
            figures.oldest_wait_s = max(0.0, (now - _aware(oldest)).total_seconds())
        return figures


def _count(counter: Counter[tuple[str, str]], phase: str, hosts: str | None, count: int) -> None:
    """Add `count` phases working on `hosts` to `counter`, once under each of its hosts
    (as each host's limit counts them), under NO_HOST when it has none."""
    for host in split_hosts(hosts) or (NO_HOST,):
        counter[(phase, host)] += count


def _aware(moment: datetime) -> datetime:
    """`min()` over a UTC column comes back naive on SQLite (no column type applies)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
