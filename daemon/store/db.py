"""Opening the state database: engines, sessions, and SQLite's WAL mode."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

from daemon.store import json_columns
from daemon.store.errors import StateStoreError


def state_url(url: str, password: str | None = None) -> URL:
    """Return the SQLAlchemy URL for `url`, with the password (kept out of the config) set."""
    parsed = make_url(url)
    if password is not None:
        parsed = parsed.set(password=password)
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def open_engine(url: URL | str, **kwargs: Any) -> Engine:
    """Create an engine for the state database.

    For SQLite the file's directory is created and every connection uses WAL
    (readers never block the daemon's writer), a busy timeout and foreign keys.
    JSON columns are written and read by daemon.store.json_columns.
    Raises StateStoreError when the SQLite directory cannot be created.
    """
    parsed = make_url(url)
    kwargs.setdefault("json_serializer", json_columns.dumps)
    kwargs.setdefault("json_deserializer", json_columns.loads)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True, **kwargs)
    if parsed.database and parsed.database != ":memory:":
        try:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StateStoreError(
                f"cannot create {Path(parsed.database).parent}: {error}"
            ) from error
    engine = create_engine(parsed, connect_args={"check_same_thread": False}, **kwargs)
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    # WAL with synchronous=NORMAL is durable across application crashes (SIGKILL);
    # only a power loss can lose the last commits.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Return a session factory whose objects stay readable after commit, and whose
    sessions append to the audit log what they record."""
    from daemon.store.audit import install_audit  # the audit module imports the models

    factory = sessionmaker(engine, expire_on_commit=False)
    install_audit(factory)
    return factory
