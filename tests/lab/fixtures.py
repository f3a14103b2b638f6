"""Session fixtures starting the lab's real services on loopback, stopped at session end.

Each fixture starts its service on first use only, so a test run pays for what it uses.
Under pytest-xdist every worker is a session of its own: it starts its own instances, on
ports the OS hands out and in a directory of its own, so workers never share a server.
A missing binary fails the test (never skips it) with a pointer to `make lab-deps`.
Set LAPSE_LAB_KEEP=1 to keep the lab directory (configs, logs, data) after the session.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from tests.lab.services.common import LabError
from tests.lab.services.mariadb import MariaDBServer, start_mariadb
from tests.lab.services.nginx import NginxServer, start_nginx
from tests.lab.services.postgres import PostgresServer, start_postgres
from tests.lab.services.s3 import S3Server, start_s3
from tests.lab.services.smtp import SMTPServer, start_smtp
from tests.lab.services.sshd import SSHServer, start_sshd

T = TypeVar("T")


def _start(start: Callable[[], T]) -> T:
    """Run a service's start function; turn a LabError into a clear test failure.

    pytrace=False: the message (with the service's log tail) is the useful part, the
    traceback through the lab's helpers is not.
    """
    try:
        return start()
    except LabError as exc:
        message = str(exc)
    # Failing outside the except block keeps pytest from printing the message twice
    # ("During handling of the above exception...").
    pytest.fail(message, pytrace=False)


@pytest.fixture(scope="session")
def lab_tmp() -> Iterator[Path]:
    """A per-session directory for the lab's configs, keys, data and logs.

    It lives directly in /tmp rather than pytest's basetemp because unix socket paths
    must stay short and the servers' unprivileged users (lapselab) must be able to
    traverse it; pytest's /tmp/pytest-of-root is mode 700.
    """
    path = Path(tempfile.mkdtemp(prefix="lapse-lab-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    if not os.environ.get("LAPSE_LAB_KEEP"):
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres(lab_tmp: Path) -> Iterator[PostgresServer]:
    """PostgreSQL 15 on 127.0.0.1, superuser `postgres` with trust auth."""
    server = _start(lambda: start_postgres(lab_tmp / "pg"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mariadb(lab_tmp: Path) -> Iterator[MariaDBServer]:
    """MariaDB on 127.0.0.1 with its own datadir and socket; root has a random password."""
    server = _start(lambda: start_mariadb(lab_tmp / "my"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def sshd(lab_tmp: Path) -> Iterator[SSHServer]:
    """sshd on 127.0.0.1 accepting the lab client key for the lapsessh user."""
    server = _start(lambda: start_sshd(lab_tmp / "ssh"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def nginx(lab_tmp: Path) -> Iterator[NginxServer]:
    """nginx on 127.0.0.1 including every file in `sites_dir`; call reload() after edits."""
    server = _start(lambda: start_nginx(lab_tmp / "nginx"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    """An S3 endpoint (moto) on 127.0.0.1; use its client() for explicit credentials."""
    server = _start(start_s3)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def smtp() -> Iterator[SMTPServer]:
    """An SMTP sink on 127.0.0.1 recording every message; see fail_next() for errors."""
    server = _start(start_smtp)
    yield server
    server.stop()


@pytest.fixture
def smtp_inbox(smtp: SMTPServer) -> Iterator[SMTPServer]:
    """The session SMTP sink, emptied (messages and pending failures) for this test."""
    smtp.clear()
    yield smtp
    # Also after: a failure a test queued but never triggered must not hit the next test.
    smtp.clear()
