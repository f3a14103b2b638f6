"""Applying the alembic migrations to the state database."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError

from daemon.store.errors import MissingStateError, StateStoreError

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

_SCRIPTS = Path(__file__).parent / "migrations"
# The newest revision under migrations/versions (a test keeps the two in step). Known
# here so that a database already at it is recognised without loading alembic, which
# is a tenth of a CLI command's memory.
SHIPPED_HEAD = "0010_billing_blocks"
# The transaction-level advisory lock migrations take on PostgreSQL ("LapseMig").
_MIGRATE_KEY = 0x4C617073654D6967


def _alembic_config() -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(_SCRIPTS))
    return config


def migrate(engine: Engine) -> str:
    """Bring the state database to the newest schema.

    Returns the revision now in place. Raises StateStoreError when the database
    cannot be reached or a migration fails.
    """
    try:
        if _stored_revision(engine) == SHIPPED_HEAD:
            return SHIPPED_HEAD
        from alembic import command

        config = _alembic_config()
        if engine.dialect.name == "sqlite":
            _upgrade_sqlite(engine, config)
            return current_revision(engine) or "base"
        with engine.begin() as connection:
            if engine.dialect.name == "postgresql":
                # Daemons started together on one database migrate one after the other
                # (the later finds the schema at the head and does nothing).
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATE_KEY}
                )
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except SQLAlchemyError as error:
        url = engine.url.render_as_string(hide_password=True)
        raise StateStoreError(f"cannot migrate the state database {url}: {error}") from error
    return current_revision(engine) or "base"


def _upgrade_sqlite(engine: Engine, config: AlembicConfig) -> None:
    """Run every pending migration on SQLite in one transaction, DDL included.

    Python's sqlite3 driver opens a transaction only before an INSERT, UPDATE or DELETE,
    so each CREATE or ALTER would commit on its own: a daemon killed in the middle of a
    migration (SIGKILL, power loss) left tables without the revision that made them, and
    every later start failed on "table already exists". Here the driver is told to
    leave transactions alone and the migration runs between an explicit BEGIN and
    COMMIT, so a kill leaves the database as it was before. Raises SQLAlchemyError.
    """
    from alembic import command

    with engine.connect() as connection:
        raw = connection.connection.driver_connection
        assert isinstance(raw, sqlite3.Connection)
        previous = raw.isolation_level
        raw.isolation_level = None  # the driver issues no BEGIN or COMMIT of its own
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
            except BaseException:
                if raw.in_transaction:
                    raw.rollback()
                raise
            connection.exec_driver_sql("COMMIT")
        finally:
            raw.isolation_level = previous


def require_file(url: URL) -> None:
    """Refuse a SQLite state database whose file does not exist, before anything opens it
    (opening would create the file and its directory). Other databases pass here and are
    checked by `require_schema` once connected.

    Raises MissingStateError naming the path.
    """
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return
    if not Path(database).exists():
        raise MissingStateError(
            f"no state database at {database}: check the config's [state] url "
            "(or $LAPSE_DATA_DIR), or run `lapse migrate` to create it"
        )


def require_schema(engine: Engine) -> None:
    """Refuse a database Lapse never migrated (an empty PostgreSQL database, say).

    Raises MissingStateError naming the database, or StateStoreError when it cannot
    be reached.
    """
    url = engine.url.render_as_string(hide_password=True)
    try:
        with engine.connect() as connection:
            migrated = engine.dialect.has_table(connection, "alembic_version")
    except SQLAlchemyError as error:
        raise StateStoreError(f"cannot open the state database {url}: {error}") from error
    if not migrated:
        raise MissingStateError(
            f"the state database {url} holds no Lapse schema: run `lapse migrate` to create it"
        )


def _stored_revision(engine: Engine) -> str | None:
    """Return the revision alembic recorded, or None when it recorded none (or one
    database has several heads, which only alembic can sort out)."""
    with engine.connect() as connection:
        if not engine.dialect.has_table(connection, "alembic_version"):
            return None
        versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    return versions[0][0] if len(versions) == 1 else None


def current_revision(engine: Engine) -> str | None:
    """Return the revision the database is at, or None before the first migration."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str:
    """Return the newest revision shipped with this version of Lapse."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None, "the package ships at least one migration"
    return head
