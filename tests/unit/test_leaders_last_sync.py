"""Every daemon's /healthz judges the syncs: a follower reads the live leader's last
sync from its heartbeat (daemon.store.daemons.leaders_last_sync)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from daemon.runtime.app import App
from daemon.store.daemons import ALIVE_WITHIN, Heartbeats, leaders_last_sync
from daemon.store.models import DaemonBeat

SYNCED = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _read(app: App) -> datetime | None:
    with app.sessions() as session:
        return leaders_last_sync(session, datetime.now(UTC))


def test_a_follower_reads_the_live_leaders_last_sync(app: App) -> None:
    assert _read(app) is None  # no daemon yet
    Heartbeats(app.sessions, "follower:2:1").beat(False, 0, SYNCED + timedelta(hours=1))
    assert _read(app) is None  # only a leader's sync counts
    Heartbeats(app.sessions, "leader:1:1").beat(True, 0, None)
    assert _read(app) is None  # the leader has not synced yet
    Heartbeats(app.sessions, "leader:1:1").beat(True, 0, SYNCED)
    assert _read(app) == SYNCED


def test_a_dead_leaders_sync_is_not_believed(app: App) -> None:
    Heartbeats(app.sessions, "leader:1:1").beat(True, 0, SYNCED)
    with app.sessions.begin() as session:
        session.execute(update(DaemonBeat).values(seen_at=datetime.now(UTC) - 2 * ALIVE_WITHIN))
    assert _read(app) is None
