"""A throwaway PostgreSQL 15 cluster on a random loopback port, trust auth, run as lapselab."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from tests.lab.services.common import (
    LAB_USER,
    ManagedProcess,
    chown_tree,
    ensure_user,
    free_port,
    require_binary,
    run_checked,
)

PG_BIN = Path("/usr/lib/postgresql/15/bin")


@dataclass
class PostgresServer:
    """Handle on the lab PostgreSQL server; superuser `postgres`, no password (trust)."""

    host: str
    port: int
    data_dir: Path
    process: ManagedProcess
    user: str = "postgres"

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the `postgres` maintenance database."""
        return self.database_url("postgres")

    def database_url(self, name: str) -> str:
        """Return the SQLAlchemy (psycopg 3) URL of database `name` on this server."""
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{name}"

    def connect(self, dbname: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        """Open an autocommit psycopg connection to `dbname`; the caller closes it."""
        return psycopg.connect(
            host=self.host, port=self.port, user=self.user, dbname=dbname, autocommit=True
        )

    def create_database(self, name: str) -> str:
        """Create the empty database `name` and return its SQLAlchemy URL.

        Raises psycopg.Error when it exists already or the name is invalid.
        """
        # CREATE DATABASE cannot run inside a transaction, hence autocommit.
        with self.connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.database_url(name)

    def stop(self) -> None:
        """Shut the server down (fast shutdown: open connections are cut)."""
        self.process.stop()


def _ready(host: str, port: int) -> bool:
    # The port opens before recovery ends ("the database system is starting up"), so only
    # a real login proves the server is usable.
    try:
        with psycopg.connect(
            host=host, port=port, user="postgres", dbname="postgres", connect_timeout=2
        ):
            return True
    except psycopg.OperationalError:
        return False


def start_postgres(workdir: Path, host: str = "127.0.0.1") -> PostgresServer:
    """Initialise a cluster under `workdir` and start postgres on a free port of `host`.

    `workdir` must be traversable by the lapselab user. Returns the running server.
    Raises LabDependencyError when PostgreSQL is not installed, LabError when initdb
    fails or the server is not ready within the deadline.
    """
    initdb = require_binary(str(PG_BIN / "initdb"))
    postgres = require_binary(str(PG_BIN / "postgres"))
    user = ensure_user(LAB_USER)

    workdir.mkdir(parents=True, exist_ok=True)
    data_dir = workdir / "data"
    socket_dir = workdir / "sock"
    socket_dir.mkdir(exist_ok=True)
    chown_tree(workdir, user)
    # As lapselab: postgres refuses root, and its cwd must be readable by that user.
    as_lab: dict[str, object] = {
        "user": user.pw_uid,
        "group": user.pw_gid,
        "extra_groups": [],
        "cwd": str(workdir),
        "env": {**os.environ, "HOME": user.pw_dir, "USER": LAB_USER, "LC_ALL": "C.UTF-8"},
    }
    run_checked(
        [
            initdb,
            "--pgdata",
            str(data_dir),
            "--username",
            "postgres",
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--locale",
            "C.UTF-8",
            # No fsync: the cluster lives for one test session.
            "--no-sync",
        ],
        "initdb",
        **as_lab,
    )
    port = free_port(host)
    process = ManagedProcess.start(
        "postgres",
        [
            postgres,
            "-D",
            str(data_dir),
            "-p",
            str(port),
            "-c",
            f"listen_addresses={host}",
            "-c",
            f"unix_socket_directories={socket_dir}",
            # Durability is worthless here and costs seconds per test run.
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=200",
        ],
        workdir / "postgres.log",
        stop_signal=signal.SIGINT,
        **as_lab,
    )
    server = PostgresServer(host=host, port=port, data_dir=data_dir, process=process)
    try:
        process.wait_until(lambda: _ready(host, port), f"accepting logins on {host}:{port}")
    except BaseException:
        process.stop()
        raise
    return server
