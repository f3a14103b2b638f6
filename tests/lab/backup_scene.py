"""The backup scene: an account with an awkward site and databases, and fixtures building
apps around it over SSH into S3 or on this machine into a directory."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from daemon.domain.clock import VirtualClock
from tests.lab.backup_helpers import (
    backup_app,
    database_access,
    local_host,
    make_awkward_site,
    s3_store,
    site_account,
    ssh_host,
)
from tests.lab.services.mariadb import MariaDBServer
from tests.lab.services.postgres import PostgresServer
from tests.lab.services.s3 import S3Server

NOW = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)


@pytest.fixture
def s3_credentials(monkeypatch: pytest.MonkeyPatch, s3: S3Server) -> S3Server:
    monkeypatch.setenv("LAPSE_TEST_S3_KEY", s3.access_key)
    monkeypatch.setenv("LAPSE_TEST_S3_SECRET", s3.secret_key)
    return s3


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state.db'}"


def _unique(tmp_path: Path, prefix: str) -> str:
    return f"{prefix}_{hashlib.sha256(str(tmp_path).encode()).hexdigest()[:8]}"


def fill_mariadb(mariadb: MariaDBServer, name: str) -> list[str]:
    """Create a MariaDB database with binary and Unicode rows, a trigger, a routine and an
    event; return its rows as text for comparison."""
    mariadb.create_database(name, name, "site-password")
    mariadb.query(
        f"USE `{name}`;"
        "CREATE TABLE posts (id INT PRIMARY KEY, title VARCHAR(100), body MEDIUMBLOB, hits INT)"
        " DEFAULT CHARSET=utf8mb4;"
        "INSERT INTO posts VALUES (1, 'Grüße, 世界', UNHEX('00FF10'), 0),"
        " (2, 'quote '' and \\\\ backslash', REPEAT('x', 70000), 5);"
        "CREATE TRIGGER count_hits BEFORE UPDATE ON posts FOR EACH ROW SET NEW.hits = OLD.hits + 1;"
        "CREATE FUNCTION twice(n INT) RETURNS INT DETERMINISTIC RETURN n * 2;"
        "CREATE EVENT nightly ON SCHEDULE EVERY 1 DAY DISABLE DO DELETE FROM posts WHERE id < 0;"
    )
    return mariadb_rows(mariadb, name)


def mariadb_rows(mariadb: MariaDBServer, name: str) -> list[str]:
    rows = mariadb.query(
        "SELECT id, title, HEX(body), hits FROM posts ORDER BY id", database=name
    ).splitlines()
    objects = mariadb.query(
        "SELECT CONCAT(ROUTINE_TYPE, ' ', ROUTINE_NAME) FROM information_schema.ROUTINES"
        f" WHERE ROUTINE_SCHEMA = '{name}' UNION ALL SELECT CONCAT('TRIGGER ', TRIGGER_NAME)"
        f" FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '{name}' UNION ALL"
        f" SELECT CONCAT('EVENT ', EVENT_NAME) FROM information_schema.EVENTS"
        f" WHERE EVENT_SCHEMA = '{name}'"
    ).splitlines()
    return rows + sorted(objects)


def fill_postgres(postgres: PostgresServer, name: str) -> list[tuple[Any, ...]]:
    postgres.create_database(name)
    with postgres.connect(name) as connection:
        connection.execute("CREATE TABLE orders (id int PRIMARY KEY, note text, raw bytea)")
        connection.execute(
            "INSERT INTO orders VALUES (1, 'naïve café', '\\x00ff'), (2, repeat('y', 5000), NULL)"
        )
    return postgres_rows(postgres, name)


def postgres_rows(postgres: PostgresServer, name: str) -> list[tuple[Any, ...]]:
    with postgres.connect(name) as connection:
        return list(connection.execute("SELECT id, note, raw FROM orders ORDER BY id").fetchall())


def drop_postgres(postgres: PostgresServer, name: str) -> None:
    with postgres.connect() as connection:
        connection.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def build_setup(
    kind: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    sqlite_url: str,
    mariadb: MariaDBServer,
    postgres: PostgresServer,
) -> dict[str, Any]:
    """An account with an awkward site and a database on each engine, and an app whose
    host and store are the SSH host and S3 ('ssh+s3'), or this machine and a directory."""
    www = tmp_path / "www"
    docroot = make_awkward_site(www / "site")
    maria_name = _unique(tmp_path, "shop")
    pg_name = _unique(tmp_path, "blog")
    maria_rows = fill_mariadb(mariadb, maria_name)
    pg_rows = fill_postgres(postgres, pg_name)
    access = database_access(tmp_path, mariadb, postgres)
    if kind == "ssh+s3":
        s3 = request.getfixturevalue("s3_credentials")
        bucket = s3.create_bucket(_unique(tmp_path, "bk").replace("_", "-"))
        host = ssh_host(request.getfixturevalue("sshd"), [www], **access)
        store = s3_store(s3.endpoint_url, bucket)
    else:
        s3, bucket = None, None
        host = local_host([www], **access)
        store = {"type": "local", "path": str(tmp_path / "backups")}
    databases = [
        {"engine": "mariadb", "name": maria_name, "user": maria_name},
        {"engine": "postgresql", "name": pg_name},
    ]
    app = backup_app(
        tmp_path,
        sqlite_url,
        VirtualClock(NOW),
        hosts={"web1": host},
        store=store,
        accounts=[site_account("acct-1", "web1", docroot, databases)],
    )
    return {
        "app": app,
        "www": www,
        "docroot": docroot,
        "maria": (maria_name, maria_rows),
        "pg": (pg_name, pg_rows),
        "s3": s3,
        "bucket": bucket,
    }


@pytest.fixture(params=["ssh+s3", "local+local"])
def setup(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    sqlite_url: str,
    mariadb: MariaDBServer,
    postgres: PostgresServer,
) -> Iterator[dict[str, Any]]:
    """The same backup scene over SSH into S3, and on this machine into a directory."""
    built = build_setup(request.param, request, tmp_path, sqlite_url, mariadb, postgres)
    yield built
    built["app"].transports.close()


@pytest.fixture
def ssh_setup(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    sqlite_url: str,
    mariadb: MariaDBServer,
    postgres: PostgresServer,
) -> Iterator[dict[str, Any]]:
    """The backup scene over SSH into S3 only (for faults of the SSH link)."""
    built = build_setup("ssh+s3", request, tmp_path, sqlite_url, mariadb, postgres)
    yield built
    built["app"].transports.close()


def assert_no_objects(setup: dict[str, Any], backup_id: str) -> None:
    """Nothing of the backup is in the store: no object, no unfinished upload."""
    s3: S3Server | None = setup["s3"]
    if s3 is None:
        backups = Path(setup["app"].config.backup.store.path)
        assert not list(backups.rglob(f"*{backup_id}*"))
        assert not list(backups.rglob("*.partial"))
        return
    client = s3.client()
    listed = client.list_objects_v2(Bucket=setup["bucket"], Prefix=f"acct-1/{backup_id}/")
    assert listed.get("KeyCount", 0) == 0
    assert client.list_multipart_uploads(Bucket=setup["bucket"]).get("Uploads", []) == []
