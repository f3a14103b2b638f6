"""One daemon per state database: the lock `lapse run` holds for its whole life.

SQLite: an exclusive `flock` on `<database>.lock` beside the database file, the
holder (host, pid, start time) written inside. PostgreSQL: a session advisory
lock on a fixed key, held by one dedicated connection whose `application_name`
names the holder. Either way the operating system ends the lock with the process
(a SIGKILL included: the file is closed, the connection drops), so a crashed
daemon never leaves a stale lock behind. Operator commands (`lapse suspend`,
`lapse restore`, ...) take no lock: their actions are coordinated by claims.
On SQLite this is how invariant 11 (one writer per account) holds across
processes. On PostgreSQL several daemons share the database and the same advisory
lock elects their leader instead (`try_writer_lock`, daemon.runtime.leadership):
the one holding it runs syncs, brake decisions and wake-ups; `lapse run --once`
still takes it, so it never runs beside a leader.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from daemon.store.errors import StateStoreError

# pg_try_advisory_lock takes a signed 64-bit key; derived once from a fixed name so
# every Lapse release agrees on it. Advisory locks are per database, so two state
# databases on one server do not collide.
ADVISORY_KEY = int.from_bytes(hashlib.sha256(b"lapse").digest()[:8], "big", signed=True)
# PostgreSQL truncates application_name to NAMEDATALEN - 1 bytes.
_APPLICATION_NAME_LIMIT = 63


class WriterLockHeldError(StateStoreError):
    """Another live daemon holds the state database; the message names it."""


def holder_record(now: datetime | None = None) -> dict[str, str | int]:
    """Return what this process says about itself as the holder: host, pid, start time."""
    started = (now or datetime.now(UTC)).isoformat(timespec="seconds")
    return {"host": socket.gethostname(), "pid": os.getpid(), "started": started}


def describe_holder(holder: dict[str, str | int] | None) -> str:
    """Render a holder record for an error message ("host h, pid 12, started ...")."""
    if not holder:
        return "holder unknown"
    host, pid, started = (holder.get(key, "?") for key in ("host", "pid", "started"))
    return f"host {host}, pid {pid}, started {started}"


class WriterLock:
    """A held writer lock; `release()` gives it up (idempotent)."""

    def check(self) -> None:
        """Make sure the lock is still ours, taking it again if it was lost and is free.

        Raises WriterLockHeldError when another daemon has it now, StateStoreError when it
        cannot be told.
        """

    def release(self) -> None:
        """Give the lock up."""


class _FileLock(WriterLock):
    def __init__(self, fd: int, path: Path) -> None:
        self._fd: int | None = fd
        self.path = path

    def check(self) -> None:
        # flock cannot be taken from us, but the file can: deleted (or replaced), it lets
        # a second daemon lock a new file of the same name.
        assert self._fd is not None, "check() after release()"
        try:
            ours, named = os.fstat(self._fd), self.path.stat()
        except FileNotFoundError:
            named = None
        if named is None or (ours.st_dev, ours.st_ino) != (named.st_dev, named.st_ino):
            holder = _read_holder_of(self.path)
            raise WriterLockHeldError(
                f"the lock file {self.path} was removed or replaced "
                f"(now: {describe_holder(holder)}): this daemon no longer holds the state database"
            )

    def release(self) -> None:
        if self._fd is None:
            return
        # Empty the record first, so a reader never mistakes a former holder for a live one.
        os.ftruncate(self._fd, 0)
        os.close(self._fd)  # closing the descriptor ends the flock
        self._fd = None


class _AdvisoryLock(WriterLock):
    def __init__(self, connection: Connection, url: URL) -> None:
        self._connection: Connection | None = connection
        self._url = url

    def check(self) -> None:
        # The lock lives as long as its connection: a server restart or a terminated
        # backend ends it, and another daemon could then take it.
        assert self._connection is not None, "check() after release()"
        try:
            held = self._connection.execute(_HELD, _key_params()).scalar_one()
            if not held:
                held = self._connection.execute(
                    text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_KEY}
                ).scalar_one()
        except SQLAlchemyError:
            held = False
            with contextlib.suppress(SQLAlchemyError):
                self._connection.close()
            self._connection = None
            # Raises WriterLockHeldError naming whoever took it meanwhile.
            replacement = _lock_advisory(self._url)
            assert isinstance(replacement, _AdvisoryLock)
            self._connection, replacement._connection = replacement._connection, None
            return
        if not held:
            assert self._connection is not None
            raise WriterLockHeldError(
                f"the one-daemon lock on {self._url.render_as_string(hide_password=True)} "
                f"is held by {_advisory_holder(self._connection)}"
            )

    def release(self) -> None:
        if self._connection is None:
            return
        try:
            self._connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_KEY})
        except SQLAlchemyError:
            pass  # the connection is gone, and the lock with it
        finally:
            self._connection.close()
            self._connection = None


def acquire_writer_lock(url: URL | str) -> WriterLock:
    """Take the one-daemon lock for the state database at `url`.

    Returns the held lock (a no-op one for an in-memory SQLite database). Raises
    WriterLockHeldError naming the holder when another live daemon has it, and
    StateStoreError when the lock itself cannot be set up.
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            return WriterLock()
        return _lock_file(Path(parsed.database))
    if backend == "postgresql":
        return _lock_advisory(parsed)
    raise StateStoreError(f"no one-daemon lock for {backend} state databases")


def try_writer_lock(url: URL | str) -> WriterLock | None:
    """Take the lock for the state database at `url` if it is free; None when another
    daemon holds it. Raises StateStoreError when the lock cannot be set up."""
    try:
        return acquire_writer_lock(url)
    except WriterLockHeldError:
        return None


def shares_daemons(url: URL | str) -> bool:
    """Whether several daemons may share the state database at `url` (PostgreSQL)."""
    return make_url(url).get_backend_name() == "postgresql"


def lock_file_path(database: Path) -> Path:
    """The lock file beside an SQLite database file."""
    return database.with_name(database.name + ".lock")


def _lock_file(database: Path) -> WriterLock:
    path = lock_file_path(database)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as error:
        raise StateStoreError(f"cannot open the lock file {path}: {error}") from error
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_holder(fd)
        os.close(fd)
        raise WriterLockHeldError(
            f"the state database {database} is in use by another lapse run "
            f"({describe_holder(holder)}; lock file {path}): one daemon per state database"
        ) from None
    record = json.dumps(holder_record()).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, record, 0)
    return _FileLock(fd, path)


def _read_holder_of(path: Path) -> dict[str, str | int] | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return _read_holder(fd)
    finally:
        os.close(fd)


def _read_holder(fd: int) -> dict[str, str | int] | None:
    try:
        data = os.pread(fd, 4096, 0)
        value = json.loads(data)
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _lock_advisory(url: URL) -> WriterLock:
    holder = holder_record()
    name = f"lapse run pid={holder['pid']} host={holder['host']}"[:_APPLICATION_NAME_LIMIT]
    # A connection of its own, outside the daemon's pool: the pool may recycle or
    # dispose its connections (a reload does), and the lock must live as long as we do.
    engine = create_engine(
        url.set(drivername="postgresql+psycopg"),
        poolclass=NullPool,
        connect_args={"application_name": name},
    )
    try:
        connection = engine.connect()
        # Autocommit: the lock is a session lock, and an idle transaction would hold
        # back vacuum for the daemon's whole life.
        connection = connection.execution_options(isolation_level="AUTOCOMMIT")
        got = connection.execute(
            text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_KEY}
        ).scalar_one()
    except SQLAlchemyError as error:
        raise StateStoreError(
            f"cannot take the one-daemon lock on {url.render_as_string(hide_password=True)}: "
            f"{error.__class__.__name__}"
        ) from None
    if got:
        return _AdvisoryLock(connection, url)
    try:
        who = _advisory_holder(connection)
    finally:
        connection.close()
    raise WriterLockHeldError(
        f"the state database {url.render_as_string(hide_password=True)} is in use by another "
        f"lapse run ({who}): one daemon per state database"
    )


# pg_locks shows a bigint advisory key as two 32-bit halves (:high, :low).
_HELD = text(
    "SELECT EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted "
    "AND l.objsubid = 1 AND l.classid::bigint = :high AND l.objid::bigint = :low "
    "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND l.pid = pg_backend_pid())"
)
_HOLDER = text(
    "SELECT a.application_name, a.client_addr, a.backend_start, l.pid "
    "FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
    "WHERE l.locktype = 'advisory' AND l.granted "
    "AND l.objsubid = 1 AND l.classid::bigint = :high AND l.objid::bigint = :low "
    "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


def _key_params() -> dict[str, int]:
    unsigned = ADVISORY_KEY & 0xFFFFFFFFFFFFFFFF
    return {"high": unsigned >> 32, "low": unsigned & 0xFFFFFFFF}


def _advisory_holder(connection: Connection) -> str:
    """Describe the session holding the advisory key, from pg_locks and pg_stat_activity."""
    row = connection.execute(_HOLDER, _key_params()).first()
    if row is None:
        return "holder unknown"
    application, address, started, backend = row
    fields = [application or "an unnamed session"]
    if address is not None:
        fields.append(f"from {address}")
    if started is not None:
        fields.append(f"started {started.astimezone(UTC).isoformat(timespec='seconds')}")
    fields.append(f"server backend {backend}")
    return ", ".join(fields)
