"""Opening the state database a config's `[state]` section names.

Apart from daemon.runtime.app so that a command needing only the state database
(`lapse restore`, the probes) does not load the rest of the application.
"""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

from daemon.config.schema import StateConfig
from daemon.store.db import open_engine, session_factory, state_url
from daemon.store.migrate import migrate, require_file, require_schema


def state_url_of(state: StateConfig) -> URL:
    """The state database's URL, with the password the config keeps apart. Raises SecretError."""
    password = state.password.reveal() if state.password else None
    return state_url(state.url, password)


def describe_state(state: StateConfig) -> str:
    """The state database the `[state]` section names, as a command tells it (a SQLite
    file's path, or the URL without its password); reads no secret."""
    url = make_url(state.url)
    if url.get_backend_name() == "sqlite" and url.database:
        return url.database
    return url.render_as_string(hide_password=True)


def open_state(state: StateConfig, *, create: bool = True) -> tuple[Engine, sessionmaker[Session]]:
    """Open the state database the `[state]` section names (no migration).

    With `create` false, a database that does not exist yet (or was never migrated) is
    refused rather than created: only `lapse run` and `lapse migrate` make one.
    Raises MissingStateError, StateStoreError or SecretError.
    """
    url = state_url_of(state)
    if not create:
        require_file(url)
    engine = open_engine(url)
    if not create:
        require_schema(engine)
    return engine, session_factory(engine)


def migrate_state(state: StateConfig) -> str:
    """Bring the state database the `[state]` section names to the newest schema; return
    the revision now in place. Raises StateStoreError or SecretError."""
    engine, _ = open_state(state)
    return migrate(engine)
