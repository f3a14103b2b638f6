"""A throwaway MariaDB server on a random loopback port with its own datadir and socket."""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from tests.lab.services.common import (
    LAB_USER,
    LabError,
    ManagedProcess,
    chown_tree,
    ensure_user,
    free_port,
    require_binary,
    run_checked,
)

_IDENTIFIER = re.compile(r"^[A-Za-z0-9_]{1,64}$")


def _sql_string(value: str) -> str:
    """Quote `value` as an SQL string literal (backslashes and quotes escaped)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass(frozen=True)
class MariaDBDatabase:
    """A database made by MariaDBServer.create_database and the user granted all on it."""

    name: str
    user: str
    password: str
    host: str
    port: int
    socket_path: Path


@dataclass
class MariaDBServer:
    """Handle on the lab MariaDB server.

    `root_user`/`root_password` log in over TCP (127.0.0.1:port) or the socket; root also
    keeps unix_socket authentication, so the OS root user needs no password on the socket.
    """

    host: str
    port: int
    socket_path: Path
    data_dir: Path
    root_user: str
    root_password: str
    process: ManagedProcess
    client_binary: str

    def client_argv(
        self,
        user: str | None = None,
        password: str | None = None,
        database: str | None = None,
        *,
        tcp: bool = True,
    ) -> list[str]:
        """Return the argv of the `mariadb` client logged in as `user` (default root).

        `tcp` picks 127.0.0.1:port over the unix socket. The password is on the command
        line, which is fine for a throwaway loopback server.
        """
        argv = [self.client_binary, "--no-defaults", "--batch", "--skip-column-names"]
        if tcp:
            argv += ["--protocol=TCP", f"--host={self.host}", f"--port={self.port}"]
        else:
            argv += ["--protocol=SOCKET", f"--socket={self.socket_path}"]
        argv.append(f"--user={user or self.root_user}")
        argv.append(f"--password={self.root_password if password is None else password}")
        if database:
            argv.append(f"--database={database}")
        return argv

    def query(
        self,
        statement: str,
        *,
        user: str | None = None,
        password: str | None = None,
        database: str | None = None,
    ) -> str:
        """Run SQL through the `mariadb` client over TCP and return its tab-separated output.

        Defaults to root. Raises LabError (with the client's message) when it fails.
        """
        argv = self.client_argv(user, password, database)
        result = run_checked([*argv, "--execute", statement], "mariadb query")
        return result.stdout

    def create_database(self, name: str, user: str, password: str) -> MariaDBDatabase:
        """Create database `name` and `user` (identified by `password`) with all on it.

        The user exists for host '%' and 'localhost' so TCP and socket logins both match.
        Returns the credentials. Raises ValueError for names that are not plain
        identifiers, LabError when the statements fail (e.g. the database exists).
        """
        for value in (name, user):
            if not _IDENTIFIER.match(value):
                raise ValueError(f"not a plain MariaDB identifier: {value!r}")
        statements = [f"CREATE DATABASE `{name}`"]
        for host in ("%", "localhost"):
            account = f"{_sql_string(user)}@{_sql_string(host)}"
            statements += [
                f"CREATE USER IF NOT EXISTS {account} IDENTIFIED BY {_sql_string(password)}",
                f"GRANT ALL PRIVILEGES ON `{name}`.* TO {account}",
            ]
        self.query("; ".join(statements))
        return MariaDBDatabase(
            name=name,
            user=user,
            password=password,
            host=self.host,
            port=self.port,
            socket_path=self.socket_path,
        )

    def stop(self) -> None:
        """Shut the server down."""
        self.process.stop(timeout=20.0)


def start_mariadb(workdir: Path, host: str = "127.0.0.1") -> MariaDBServer:
    """Install a fresh datadir under `workdir` and start mariadbd on a free port of `host`.

    `workdir` must be traversable by the lapselab user, and short (it holds the socket).
    Returns the running server with a random root password set. Raises
    LabDependencyError when MariaDB is not installed, LabError when installing the
    datadir fails or the server is not ready within the deadline.
    """
    install_db = require_binary("mariadb-install-db")
    mariadbd = require_binary("mariadbd")
    client = require_binary("mariadb")
    user = ensure_user(LAB_USER)

    workdir.mkdir(parents=True, exist_ok=True)
    data_dir = workdir / "data"
    tmp_dir = workdir / "tmp"
    tmp_dir.mkdir(exist_ok=True)
    socket_path = workdir / "mysqld.sock"
    chown_tree(workdir, user)
    run_checked(
        [
            install_db,
            "--no-defaults",
            f"--datadir={data_dir}",
            f"--user={LAB_USER}",
            "--skip-test-db",
            # Root authenticates through the unix socket until start_mariadb sets a password.
            "--auth-root-authentication-method=socket",
            # Passed on to the bootstrap server: its temporary tables go in this instance's
            # own directory, not the /tmp every other test process on the machine shares.
            f"--tmpdir={tmp_dir}",
        ],
        "mariadb-install-db",
        cwd=str(workdir),
    )
    port = free_port(host)
    process = ManagedProcess.start(
        "mariadbd",
        [
            mariadbd,
            "--no-defaults",
            # Started as root, mariadbd drops to lapselab itself.
            f"--user={LAB_USER}",
            f"--datadir={data_dir}",
            f"--tmpdir={tmp_dir}",
            f"--socket={socket_path}",
            f"--pid-file={workdir / 'mariadbd.pid'}",
            f"--port={port}",
            f"--bind-address={host}",
            "--skip-networking=0",
            f"--log-error={workdir / 'mariadbd.err'}",
            # Small and unsafe on purpose: a throwaway server must start fast.
            "--innodb-buffer-pool-size=32M",
            "--innodb-log-file-size=16M",
            "--innodb-flush-log-at-trx-commit=0",
            "--innodb-doublewrite=0",
            "--skip-log-bin",
        ],
        workdir / "mariadbd.log",
        cwd=str(workdir),
    )
    root_password = secrets.token_hex(12)
    server = MariaDBServer(
        host=host,
        port=port,
        socket_path=socket_path,
        data_dir=data_dir,
        root_user="root",
        root_password=root_password,
        process=process,
        client_binary=client,
    )
    # --log-error sends the server's messages there, so errors must show that file.
    process.log_path = workdir / "mariadbd.err"
    try:
        process.wait_for_port(host, port)
        # Root logs in over the socket as the OS root user (unix_socket auth); give it a
        # password too, for TCP, and remove the anonymous accounts, which would otherwise
        # shadow 'user'@'%' for logins from localhost.
        socket_login = [
            client,
            "--no-defaults",
            "--protocol=SOCKET",
            f"--socket={socket_path}",
            "--user=root",
        ]
        pw = _sql_string(root_password)
        setup = "; ".join(
            [
                "ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket"
                f" OR mysql_native_password USING PASSWORD({pw})",
                f"CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY {pw}",
                "GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION",
                "DELETE FROM mysql.global_priv WHERE User = ''",
                "FLUSH PRIVILEGES",
            ]
        )
        run_checked([*socket_login, "--execute", setup], "mariadb root setup")
    except BaseException:
        process.stop()
        raise
    if not os.path.exists(socket_path):
        process.stop()
        raise LabError(f"lab: mariadbd is up but its socket {socket_path} is missing")
    return server
