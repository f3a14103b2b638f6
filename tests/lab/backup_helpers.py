"""Building blocks for backup tests: awkward sites, tree fingerprints, configs and apps."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

from daemon.config.load import validate_config
from daemon.domain.clock import VirtualClock
from daemon.runtime.app import App, build_app
from tests.lab.services.mariadb import MariaDBServer
from tests.lab.services.postgres import PostgresServer
from tests.lab.services.sshd import SSHServer

# Owner ids that belong to no user: tar must keep them as numbers.
SITE_UID = 12345
SITE_GID = 12346


def make_awkward_site(docroot: Path) -> Path:
    """Fill `docroot` with what real sites have and naive backups lose.

    Names with spaces, a newline, non-UTF-8 bytes and a leading dash; modes 0600,
    0755 and a setgid directory; numeric ownership of no existing user; relative,
    absolute and dangling symlinks; a hard link; an empty directory; and a 1 MiB
    random file. Returns `docroot`.
    """
    docroot.mkdir(parents=True)
    (docroot / "index.html").write_text("<h1>Welcome</h1>\n")
    (docroot / "with space.txt").write_text("spaces\n")
    (docroot / "line\nbreak.txt").write_text("newline in the name\n")
    os.makedirs(os.fsencode(docroot) + b"/caf\xe9-latin1", exist_ok=True)
    with open(os.fsencode(docroot) + b"/caf\xe9-latin1/menu\xff.txt", "wb") as handle:
        handle.write(b"non-UTF-8 names\n")
    (docroot / "-dash.txt").write_text("leading dash\n")
    private = docroot / "config.php"
    private.write_text("<?php $secret = 'x';\n")
    private.chmod(0o600)
    script = docroot / "cgi-bin"
    script.mkdir()
    (script / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (script / "run.sh").chmod(0o755)
    shared = docroot / "uploads"
    shared.mkdir()
    shared.chmod(0o2775)
    (shared / "photo.bin").write_bytes(os.urandom(1024 * 1024))
    (docroot / "empty-dir").mkdir()
    os.symlink("uploads/photo.bin", docroot / "relative-link")
    os.symlink("/etc/hostname", docroot / "absolute-link")
    os.symlink("does-not-exist", docroot / "dangling-link")
    os.link(docroot / "index.html", docroot / "hardlink.html")
    for path in [docroot, *docroot.rglob("*")]:
        os.lchown(path, SITE_UID, SITE_GID)
    return docroot


def tree_fingerprint(root: Path) -> dict[bytes, tuple[Any, ...]]:
    """Describe every entry under `root`: kind, mode, owner, mtime and content or link target.

    Names are bytes so non-UTF-8 names compare exactly.
    """
    result: dict[bytes, tuple[Any, ...]] = {}
    base = os.fsencode(root)
    for directory, dirs, files in os.walk(base):
        for name in [*dirs, *files]:
            path = os.path.join(directory, name)
            info = os.lstat(path)
            relative = os.path.relpath(path, base)
            if stat.S_ISLNK(info.st_mode):
                content: Any = ("link", os.readlink(path))
            elif stat.S_ISDIR(info.st_mode):
                content = ("dir",)
            else:
                with open(path, "rb") as handle:
                    content = ("file", hashlib.sha256(handle.read()).hexdigest())
            mtime = None if stat.S_ISDIR(info.st_mode) else int(info.st_mtime)
            result[relative] = (
                stat.S_IMODE(info.st_mode),
                info.st_uid,
                info.st_gid,
                mtime,
                content,
            )
    return result


def ssh_host(sshd: SSHServer, roots: list[Path], **extra: Any) -> dict[str, Any]:
    """A [hosts] entry reaching the lab sshd as root with the lab key."""
    return {
        "transport": "ssh",
        "address": sshd.host,
        "port": sshd.port,
        "user": sshd.root_user,
        "key_file": str(sshd.client_key_path),
        "known_hosts": str(sshd.known_hosts_path),
        "playbook": "nginx-linux",
        "allowed_roots": [str(root) for root in roots],
        **extra,
    }


def local_host(roots: list[Path], **extra: Any) -> dict[str, Any]:
    """A [hosts] entry running commands on this machine."""
    return {
        "transport": "local",
        "playbook": "nginx-linux",
        "allowed_roots": [str(root) for root in roots],
        **extra,
    }


def database_access(
    tmp_path: Path, mariadb: MariaDBServer, postgres: PostgresServer
) -> dict[str, Any]:
    """The `mariadb` and `postgresql` host tables for the lab servers.

    The MariaDB root password comes from a secret file, as an operator would keep it.
    """
    secret = tmp_path / "mariadb-password"
    secret.write_text(mariadb.root_password + "\n")
    secret.chmod(0o600)
    return {
        "mariadb": {
            "host": mariadb.host,
            "port": mariadb.port,
            "user": mariadb.root_user,
            "password": {"file": str(secret)},
        },
        "postgresql": {"host": postgres.host, "port": postgres.port, "user": postgres.user},
    }


def site_account(
    account_id: str, host: str, docroot: Path | None, databases: list[dict[str, str]]
) -> dict[str, Any]:
    """A paid-up account in the nested billing format with one hosting service."""
    return {
        "account_id": account_id,
        "plan": "default",
        "contact": {"name": "Client", "email": f"{account_id}@example.org"},
        "currency": "EUR",
        "balance": "0",
        "invoices": [],
        "services": [
            {
                "host": host,
                "system_user": account_id,
                "docroot": str(docroot) if docroot else "",
                "domains": [f"{account_id}.example.org"],
                "databases": databases,
            }
        ],
    }


def backup_app(
    tmp_path: Path,
    state_url: str,
    clock: VirtualClock,
    *,
    hosts: dict[str, Any],
    store: dict[str, Any],
    accounts: list[dict[str, Any]],
    retention: str = "90d",
    policy: dict[str, Any] | None = None,
) -> App:
    """A real app with the given hosts, store, billing accounts and default policy,
    synced once."""
    (tmp_path / "billing.json").write_text(json.dumps({"accounts": accounts}))
    raw = {
        "state": {"url": state_url},
        "billing": {"type": "file", "path": str(tmp_path / "billing.json")},
        "backup": {"store": store, "retention": retention},
        "notices": {"notifier": {"type": "outbox", "path": str(tmp_path / "outbox")}},
        "hosts": hosts,
        "policy": {"default": policy or {}},
    }
    config = validate_config(raw, source="test", base_dir=tmp_path)
    app = build_app(config, clock)
    app.lifecycle.sync()
    return app


def s3_store(endpoint_url: str, bucket: str, **extra: Any) -> dict[str, Any]:
    """A [backup.store] table for the lab S3 server."""
    return {
        "type": "s3",
        "bucket": bucket,
        "endpoint_url": endpoint_url,
        "region": "us-east-1",
        "access_key_id": {"env": "LAPSE_TEST_S3_KEY"},
        "secret_access_key": {"env": "LAPSE_TEST_S3_SECRET"},
        **extra,
    }
