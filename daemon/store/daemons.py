"""The daemons alive on one state database: each says so every few seconds.

Every `lapse run` keeps one row of `daemons` (its claim name, host, pid, start),
renewed every HEARTBEAT seconds with whether it leads and how many phases it runs;
a clean stop removes it. `lapse status` and /metrics read it: a row not renewed for
ALIVE_WITHIN is a daemon that died (SIGKILL, a lost machine), shown as gone, and
removed by the next daemon that beats.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from daemon.store.models import DaemonBeat

HEARTBEAT = timedelta(seconds=2)
ALIVE_WITHIN = timedelta(seconds=10)
# A daemon gone this long is forgotten (removed from the table).
_FORGET_AFTER = timedelta(hours=1)


@dataclass(frozen=True)
class DaemonView:
    """One daemon as `lapse status` shows it."""

    id: str
    host: str
    pid: int
    started_at: datetime
    seen_at: datetime
    leader: bool
    running: int
    alive: bool


class Heartbeats:
    """Writes this daemon's heartbeat row and reads everyone's."""

    def __init__(self, sessions: sessionmaker[Session], owner: str) -> None:
        self.sessions = sessions
        self.owner = owner
        self.started_at = datetime.now(UTC)

    def beat(self, leader: bool, running: int, last_sync: datetime | None = None) -> None:
        """Say this daemon is alive, whether it leads, how many phases it runs and (a
        leader) when it last synced billing."""
        now = datetime.now(UTC)
        with self.sessions.begin() as session:
            row = session.get(DaemonBeat, self.owner)
            if row is None:
                row = DaemonBeat(
                    id=self.owner,
                    host=socket.gethostname(),
                    pid=os.getpid(),
                    started_at=self.started_at,
                )
                session.add(row)
            row.seen_at, row.leader, row.running = now, leader, running
            row.last_sync = last_sync
            session.execute(delete(DaemonBeat).where(DaemonBeat.seen_at < now - _FORGET_AFTER))

    def forget(self) -> None:
        """Remove this daemon's row (a clean stop)."""
        with self.sessions.begin() as session:
            session.execute(delete(DaemonBeat).where(DaemonBeat.id == self.owner))


def leaders_last_sync(session: Session, now: datetime) -> datetime | None:
    """When a live leader last synced billing, as its heartbeat says (None: no live
    leader has synced yet)."""
    return session.scalar(
        select(func.max(DaemonBeat.last_sync)).where(
            DaemonBeat.leader.is_(True), DaemonBeat.seen_at >= now - ALIVE_WITHIN
        )
    )


def daemons(session: Session, now: datetime) -> list[DaemonView]:
    """Every daemon with a row, the leader first, each told alive or gone at `now`."""
    rows = session.scalars(select(DaemonBeat).order_by(DaemonBeat.started_at)).all()
    views = [
        DaemonView(
            row.id,
            row.host,
            row.pid,
            row.started_at,
            row.seen_at,
            row.leader,
            row.running,
            now - row.seen_at <= ALIVE_WITHIN,
        )
        for row in rows
    ]
    return sorted(views, key=lambda view: not (view.leader and view.alive))
