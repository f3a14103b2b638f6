"""A private sshd on a random loopback port, accepting key logins for the lapsessh user."""

from __future__ import annotations

import os
import pwd
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.lab.services.common import (
    ManagedProcess,
    ensure_user,
    free_port,
    require_binary,
    run_checked,
    user_tool,
)

SSH_USER = "lapsessh"
# Logins a test makes for itself (a user of its own: its ~/.bashrc, its shell) start so.
EXTRA_LOGIN_PREFIX = "lapselogin"
SFTP_SERVER = Path("/usr/lib/openssh/sftp-server")


@dataclass
class SSHServer:
    """Handle on the lab sshd.

    `user` (and `root_user`, for what needs root: ownership, useradd) logs in with the
    private key at `client_key_path`; `known_hosts_path` holds
    the host key as `[host]:port ssh-ed25519 ...`, which OpenSSH and paramiko both read.
    `host_public_key` is that host key line without the host part ("ssh-ed25519 AAAA...").
    """

    host: str
    port: int
    user: str
    client_key_path: Path
    client_public_key: str
    known_hosts_path: Path
    host_public_key: str
    config_path: Path
    process: ManagedProcess
    root_user: str = "root"

    def ssh_argv(self, *command: str, user: str | None = None) -> list[str]:
        """Return an OpenSSH client argv running `command` on the lab server as `user`.

        Host key checking is strict against the lab's known_hosts; no user config is read.
        """
        return [
            "ssh",
            "-F",
            "/dev/null",
            "-i",
            str(self.client_key_path),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            f"UserKnownHostsFile={self.known_hosts_path}",
            "-o",
            "ConnectTimeout=5",
            "-p",
            str(self.port),
            f"{user or self.user}@{self.host}",
            *command,
        ]

    def stop(self) -> None:
        """Stop sshd (open sessions are cut when their connection closes)."""
        self.process.stop()


def _keygen(ssh_keygen: str, path: Path, comment: str) -> str:
    """Create an ed25519 key pair at `path` (replacing any) and return the public key line."""
    for stale in (path, path.with_name(path.name + ".pub")):
        stale.unlink(missing_ok=True)
    run_checked(
        [ssh_keygen, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        "ssh-keygen",
    )
    return path.with_name(path.name + ".pub").read_text().strip()


def install_authorized_key(public_key: str, name: str = SSH_USER) -> pwd.struct_passwd:
    """Make `public_key` the only authorized key of the login user `name` (created with a
    bash login shell if missing). Returns the user's passwd entry."""
    user = ensure_user(name, system=False, login_shell="/bin/bash")
    # A fresh useradd leaves the account locked ("!"), and sshd refuses locked accounts
    # even for key logins; "*" means "no password" without locking it.
    user_tool(require_binary("usermod"), "-p", "*", name)
    home = Path(user.pw_dir)
    home.mkdir(parents=True, exist_ok=True)
    os.chown(home, user.pw_uid, user.pw_gid)
    ssh_dir = home / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    os.chown(ssh_dir, user.pw_uid, user.pw_gid)
    ssh_dir.chmod(0o700)
    keys = ssh_dir / "authorized_keys"
    # Overwritten every session: a key from an earlier run is stale, its private half gone.
    keys.write_text(public_key + "\n")
    os.chown(keys, user.pw_uid, user.pw_gid)
    keys.chmod(0o600)
    return user


def start_sshd(workdir: Path, host: str = "127.0.0.1") -> SSHServer:
    """Start sshd with its own config and keys under `workdir` on a free port of `host`.

    Creates the lapsessh user if needed and installs the client key for it. Returns the
    server once a real `ssh ... true` login succeeded. Raises LabDependencyError when
    OpenSSH is not installed, LabError when sshd does not start or the login fails.
    """
    sshd = require_binary("/usr/sbin/sshd")
    ssh_keygen = require_binary("ssh-keygen")
    require_binary("ssh")

    workdir.mkdir(parents=True, exist_ok=True)
    host_key = workdir / "ssh_host_ed25519_key"
    client_key = workdir / "client_ed25519"
    host_public = _keygen(ssh_keygen, host_key, "lapse-lab-host")
    client_public = _keygen(ssh_keygen, client_key, "lapse-lab-client")
    install_authorized_key(client_public)
    # sshd insists on its privilege separation directory even in a private instance.
    Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)

    port = free_port(host)
    key_type, key_blob = host_public.split()[:2]
    host_public_key = f"{key_type} {key_blob}"
    known_hosts = workdir / "known_hosts"
    known_hosts.write_text(f"[{host}]:{port} {host_public_key}\n")

    authorized_dir = workdir / "authorized_keys"
    authorized_dir.mkdir(exist_ok=True)
    for login in (SSH_USER, "root"):
        (authorized_dir / login).write_text(client_public + "\n")
    config = workdir / "sshd_config"
    lines = [
        f"ListenAddress {host}",
        f"Port {port}",
        f"HostKey {host_key}",
        f"PidFile {workdir / 'sshd.pid'}",
        "UsePAM no",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PubkeyAuthentication yes",
        # Keys for both lab users live in the workdir, so root's own ~/.ssh is never touched.
        f"AuthorizedKeysFile {authorized_dir}/%u .ssh/authorized_keys",
        # The lab's files live in /tmp with root ownership; modes are not what is tested.
        "StrictModes no",
        f"AllowUsers {SSH_USER} {EXTRA_LOGIN_PREFIX}* root",
        "PermitRootLogin prohibit-password",
        "LogLevel VERBOSE",
    ]
    if SFTP_SERVER.exists():
        # Backups and uploads may go over SFTP (paramiko), so offer the subsystem.
        lines.append(f"Subsystem sftp {SFTP_SERVER}")
    config.write_text("\n".join(lines) + "\n")
    run_checked([sshd, "-t", "-f", str(config)], "sshd config test")

    process = ManagedProcess.start(
        "sshd", [sshd, "-D", "-e", "-f", str(config)], workdir / "sshd.log"
    )
    server = SSHServer(
        host=host,
        port=port,
        user=SSH_USER,
        client_key_path=client_key,
        client_public_key=client_public,
        known_hosts_path=known_hosts,
        host_public_key=host_public_key,
        config_path=config,
        process=process,
    )
    try:
        process.wait_for_port(host, port)
        probe = subprocess.run(
            server.ssh_argv("true"), capture_output=True, text=True, timeout=30, check=False
        )
        if probe.returncode != 0:
            raise process.failure(
                f"refused the lab key login (ssh exit {probe.returncode}: {probe.stderr.strip()})"
            )
    except BaseException:
        process.stop()
        raise
    return server
