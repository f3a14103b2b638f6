"""A hosting account on real servers for playbook tests: a Unix user with an SSH key and
a cron job, an nginx vhost serving its docroot, a MariaDB and a PostgreSQL database with
their own users, and a client portal API (a local HTTP server recording its calls)."""

from __future__ import annotations

import json
import os
import pwd
import secrets
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from daemon.config.schema import ALL_WEEKDAYS
from daemon.domain.clock import VirtualClock
from daemon.runtime.app import App
from tests.lab.backup_helpers import backup_app, database_access, site_account, ssh_host
from tests.lab.services.common import user_tool
from tests.lab.services.mariadb import MariaDBServer
from tests.lab.services.nginx import NginxServer
from tests.lab.services.postgres import PostgresServer
from tests.lab.services.sshd import SSHServer

# Sixty days ago: a scene can time-travel to its suspension and still end in the past,
# so a real-time scheduler (webhook tests) can take over from there.
START = datetime.now(UTC).replace(microsecond=0) - timedelta(days=60)
ORIGINAL_PAGE = "<h1>Riverside Bakery: fresh bread daily</h1>\n"
PORTAL_TOKEN = "portal-token-for-tests"


@dataclass
class PortalCalls:
    """Requests the fake client portal received: (path, authorization, JSON body)."""

    calls: list[tuple[str, str | None, dict[str, Any]]] = field(default_factory=list)


@pytest.fixture
def portal() -> Iterator[tuple[str, PortalCalls]]:
    """A client-portal API on loopback that records each POST and answers 204."""
    with serve_portal() as served:
        yield served


@contextmanager
def serve_portal() -> Iterator[tuple[str, PortalCalls]]:
    """Run the recording client portal; yields (its base URL, the calls it received)."""
    received = PortalCalls()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length) or b"{}")
            received.calls.append((self.path, self.headers.get("Authorization"), body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", received
    server.shutdown()


@dataclass
class Scene:
    """The account on the lab servers, and the app that manages it."""

    app: App
    clock: VirtualClock
    account_id: str
    user: str
    domain: str
    docroot: Path
    vhost: Path
    maria_db: str
    pg_db: str
    nginx: NginxServer
    mariadb: MariaDBServer
    postgres: PostgresServer
    portal: PortalCalls
    billing_path: Path
    account: dict[str, Any]

    def get(self, path: str = "/", languages: str | None = None) -> httpx.Response:
        """Fetch `path` of the site through the lab nginx, asking for `languages` (an
        Accept-Language value) when given."""
        headers = {"Host": self.domain}
        if languages is not None:
            headers["Accept-Language"] = languages
        return httpx.get(self.nginx.url(path), headers=headers, timeout=10)

    def pay(self) -> None:
        """The client pays everything: billing shows nothing owed."""
        self.account["balance"] = "0"
        self.account["invoices"] = []
        self.billing_path.write_text(json.dumps({"accounts": [self.account]}))

    def locked(self) -> bool:
        """Whether the Unix user is locked ('!' before the hash) and expired."""
        shadow = subprocess.run(
            ["getent", "shadow", self.user], capture_output=True, text=True, check=True
        ).stdout.split(":")
        locked, expired = shadow[1].startswith("!"), shadow[7] not in ("", "-1")
        assert locked == expired, f"half-locked user: {shadow}"
        return locked

    def maria_login_works(self) -> bool:
        """Whether the database user can log in to MariaDB."""
        result = subprocess.run(
            [*self.mariadb.client_argv(self.user_db, "db-pass", self.maria_db), "-e", "SELECT 1"],
            capture_output=True,
            text=True,
            check=False,
        )
        return result.returncode == 0

    def pg_login_allowed(self) -> bool:
        """Whether the PostgreSQL role may log in."""
        with self.postgres.connect() as connection:
            row = connection.execute(
                "SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", (self.user_db,)
            ).fetchone()
        return bool(row and row[0])

    @property
    def user_db(self) -> str:
        """The account's database user name (the same on both engines)."""
        return self.user.replace("-", "_")


@pytest.fixture
def scene(
    tmp_path: Path,
    sshd: SSHServer,
    nginx: NginxServer,
    mariadb: MariaDBServer,
    postgres: PostgresServer,
    portal: tuple[str, PortalCalls],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Scene]:
    """An overdue account whose site, user and databases are live on the lab servers."""
    monkeypatch.setenv("LAPSE_PORTAL_TOKEN", PORTAL_TOKEN)
    with build_scene(tmp_path, sshd, nginx, mariadb, postgres, portal) as built:
        yield built


@contextmanager
def build_scene(
    tmp_path: Path,
    sshd: SSHServer,
    nginx: NginxServer,
    mariadb: MariaDBServer,
    postgres: PostgresServer,
    portal: tuple[str, PortalCalls],
    state_url: str | None = None,
) -> Iterator[Scene]:
    """Set up the scene's user, site, vhost and databases on the lab servers (the portal
    token must be in $LAPSE_PORTAL_TOKEN); yields the Scene and removes it all after.
    The state database is an SQLite file under `tmp_path` unless `state_url` names one."""
    suffix = secrets.token_hex(3)
    user = f"lapse-c{suffix}"
    domain = f"bakery-{suffix}.example.test"
    www = tmp_path / "www"
    home = tmp_path / "home" / user
    home.parent.mkdir(parents=True)
    user_tool("useradd", "--create-home", "--home-dir", str(home), "--shell", "/bin/bash", user)
    user_tool("usermod", "-p", "*", user)
    info = pwd.getpwnam(user)
    (home / ".ssh").mkdir(mode=0o700)
    (home / ".ssh" / "authorized_keys").write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA client\n")
    subprocess.run(["crontab", "-u", user, "-"], input="*/5 * * * * true\n", text=True, check=True)
    docroot = www / domain
    (docroot / ".well-known" / "acme-challenge").mkdir(parents=True)
    (docroot / "index.html").write_text(ORIGINAL_PAGE)
    (docroot / ".well-known" / "acme-challenge" / "token-1").write_text("acme-proof\n")
    for path in [home, *home.rglob("*"), docroot, *docroot.rglob("*")]:
        os.lchown(path, info.pw_uid, info.pw_gid)
    vhost = nginx.sites_dir / f"{domain}.conf"
    vhost.write_text(
        f"server {{\n    listen {nginx.host}:{nginx.port};\n    server_name {domain};\n"
        f"    root {docroot};\n}}\n"
    )
    nginx.reload()

    db_user = user.replace("-", "_")
    maria_db, pg_db = f"shop_{suffix}", f"blog_{suffix}"
    mariadb.create_database(maria_db, db_user, "db-pass")
    mariadb.query(f"CREATE TABLE `{maria_db}`.t (id INT); INSERT INTO `{maria_db}`.t VALUES (7)")
    postgres.create_database(pg_db)
    with postgres.connect() as connection:
        connection.execute(f"CREATE ROLE \"{db_user}\" LOGIN PASSWORD 'db-pass'")
    with postgres.connect(pg_db) as connection:
        connection.execute("CREATE TABLE posts (id int); INSERT INTO posts VALUES (42)")

    portal_url, calls = portal
    nginx_args = f"{nginx.binary} -p {nginx.prefix}/ -c {nginx.conf_path}"
    host = ssh_host(
        sshd,
        [www],
        **database_access(tmp_path, mariadb, postgres),
        vars={
            "sites_dir": str(nginx.sites_dir),
            "state_dir": str(tmp_path / "lapse-state"),
            "nginx_test": f"{nginx_args} -t -q",
            "nginx_reload": f"{nginx_args} -s reload",
            "mysql": f"mariadb --no-defaults --socket={mariadb.socket_path} --user=root",
            "psql": f"psql -X -q -h {postgres.host} -p {postgres.port} -U postgres -d postgres",
            "check_base": f"http://{nginx.host}:{nginx.port}",
            "portal_url": portal_url,
            "listen": f"{nginx.host}:{nginx.port}",
        },
    )
    account = site_account(
        "acct-bakery",
        "web1",
        docroot,
        [
            {"engine": "mariadb", "name": maria_db, "user": db_user},
            {"engine": "postgresql", "name": pg_db, "user": db_user},
        ],
    )
    account["services"][0]["domains"] = [domain]
    account["services"][0]["system_user"] = user
    account["contact"]["name"] = "Rita Riverside"
    account["balance"] = "49.90"
    account["invoices"] = [
        {"id": "INV-77", "due_at": START.isoformat(), "total": "49.90", "items": []}
    ]
    clock = VirtualClock(START)
    app = backup_app(
        tmp_path,
        state_url or f"sqlite:///{tmp_path / 'state.db'}",
        clock,
        hosts={"web1": host},
        store={"type": "local", "path": str(tmp_path / "backups")},
        accounts=[account],
        policy={"quiet_hours": "", "contact_days": list(ALL_WEEKDAYS)},
    )
    built = Scene(
        app=app,
        clock=clock,
        account_id="acct-bakery",
        user=user,
        domain=domain,
        docroot=docroot,
        vhost=vhost,
        maria_db=maria_db,
        pg_db=pg_db,
        nginx=nginx,
        mariadb=mariadb,
        postgres=postgres,
        portal=calls,
        billing_path=tmp_path / "billing.json",
        account=account,
    )
    try:
        yield built
    finally:
        app.transports.close()
        subprocess.run(["pkill", "-KILL", "-u", user], check=False)
        subprocess.run(["crontab", "-r", "-u", user], check=False, capture_output=True)
        user_tool("userdel", user, check=False)
        for leftover in nginx.sites_dir.glob(f"{domain}.conf*"):
            leftover.unlink()
        nginx.reload()
