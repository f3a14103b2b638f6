"""A read model of what waits: the queue of playbook phases and the client notices not
delivered yet.

`/metrics` asks these questions at each scrape (daemon.runtime.http.metrics), of the
same state database the lifecycle engine and the runner write, and gets plain values
back. Nothing here writes.

The queue is the `scheduled_actions` table: a phase is queued while its row is
`pending`. The table records no host (a phase runs on every host of its account), so
the queue is told per phase only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from daemon.domain.phases import PLAYBOOK_PHASES
from daemon.domain.states import ActionStatus, ApprovalStatus, NoticeStatus
from daemon.store.models import Approval, Correspondence, ScheduledAction


@dataclass(frozen=True)
class PhaseQueue:
    """The phases of one kind waiting to run: how many, and how long the one due first
    has been due (zero when none is due yet, or none waits)."""

    phase: str
    depth: int
    oldest_age: timedelta


class Waiting:
    """Answers what waits in one state database."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def phases(self, now: datetime) -> list[PhaseQueue]:
        """Return the queue of every playbook phase (each one, even with none waiting, in
        the order playbooks list them, then any other name the table holds)."""
        query = (
            select(ScheduledAction.name, func.count(), func.min(ScheduledAction.due_at))
            .where(ScheduledAction.status == ActionStatus.PENDING)
            .group_by(ScheduledAction.name)
        )
        with self.sessions() as session:
            found = {name: (depth, due) for name, depth, due in session.execute(query)}
        names = [str(phase) for phase in PLAYBOOK_PHASES]
        names += sorted(set(found) - set(names))
        queues = []
        for name in names:
            depth, due = found.get(name, (0, None))
            age = max(now - due, timedelta(0)) if due is not None else timedelta(0)
            queues.append(PhaseQueue(name, depth, age))
        return queues

    def notices(self) -> int:
        """Return how many client notices are written but not delivered yet."""
        query = (
            select(func.count())
            .select_from(Correspondence)
            .where(Correspondence.status == NoticeStatus.PENDING)
        )
        with self.sessions() as session:
            return session.scalar(query) or 0

    def approvals(self) -> int:
        """Return how many queued phases wait for a person's approval (`approve`)."""
        query = (
            select(func.count())
            .select_from(Approval)
            .where(Approval.status == ApprovalStatus.WAITING)
        )
        with self.sessions() as session:
            return session.scalar(query) or 0
