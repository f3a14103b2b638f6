"""Which daemon leads: the one holding the state database's advisory lock.

The leader runs what must happen once however many daemons run: the billing sync
(and with it the safety brake's decisions), wake-ups at deadlines and acting on
payment events (daemon.runtime.scheduler). Every daemon runs phases.

On SQLite one daemon acts: it took the lock file before anything started (a second
refuses, naming the holder) and leads for its whole life; losing the file stops it.
On PostgreSQL the lock is a session advisory lock on a connection of its own
(daemon.store.writer_lock): a follower tries to take it every LEADER_CHECK seconds,
so when the leader dies (its connection drops with it) another leads within that
and the check interval; a leader whose connection was cut steps down at its next
check.
"""

from __future__ import annotations

import structlog
from sqlalchemy.engine import URL

from daemon.store.errors import StateStoreError
from daemon.store.writer_lock import WriterLock, try_writer_lock

log = structlog.get_logger("lapse.leadership")

# How often leadership is confirmed (by the leader) or tried for (by a follower), seconds.
LEADER_CHECK = 1.0


class Leadership:
    """This daemon's claim to lead."""

    def __init__(self, url: URL, held: WriterLock | None = None) -> None:
        """`held`: the lock the daemon took before starting (SQLite), which it keeps
        for life; None on a shared PostgreSQL database, where it is tried for."""
        self.url = url
        self.shared = held is None
        self._lock = held

    @property
    def leads(self) -> bool:
        """Whether this daemon leads now."""
        return self._lock is not None

    def refresh(self) -> bool:
        """Confirm or try for leadership; return whether this daemon leads.

        Raises StateStoreError when the lock a lone daemon (SQLite) holds was lost: it
        must stop, as another daemon may have taken the database.
        """
        if not self.shared:
            assert self._lock is not None
            self._lock.check()
            return True
        if self._lock is not None:
            try:
                self._lock.check()
            except StateStoreError as error:
                log.warning("leadership lost; following", error=str(error))
                self._lock.release()
                self._lock = None
            return self.leads
        try:
            self._lock = try_writer_lock(self.url)
        except StateStoreError as error:
            log.warning("cannot try for leadership", error=str(error))
            return False
        if self._lock is not None:
            log.info("leading: this daemon runs syncs, brake decisions and wake-ups")
        return self.leads

    def release(self) -> None:
        """Give leadership up (a shared database's lock; a lone daemon's is released by
        whoever took it)."""
        if self.shared and self._lock is not None:
            self._lock.release()
            self._lock = None
