"""The restore scene: a live site with a backup, a neighbour's tree and a directory outside
every allowed root, over SSH into S3 or on this machine into a directory."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import zstandard

from daemon.backup.views import BackupView
from daemon.domain.clock import VirtualClock
from daemon.runtime.app import App
from daemon.store.models import Backup
from tests.lab.backup_helpers import (
    backup_app,
    local_host,
    make_awkward_site,
    s3_store,
    site_account,
    ssh_host,
    tree_fingerprint,
)
from tests.lab.backup_scene import NOW

MIB = 1024 * 1024


@dataclass
class RestoreScene:
    """`docroot` of acct-1 under the allowed root `www`; `neighbour` another tree there;
    `outside` a directory under no allowed root; `backup` taken of the docroot."""

    app: App
    www: Path
    docroot: Path
    neighbour: Path
    outside: Path
    backup: BackupView
    kind: str

    def untouched(self) -> dict[str, Any]:
        """Fingerprints of every tree a restore must not change but the target."""
        return {
            "neighbour": tree_fingerprint(self.neighbour),
            "outside": tree_fingerprint(self.outside),
        }

    def leftovers(self) -> list[str]:
        """Staging or previous trees of a restore left anywhere under the scene.

        A previous tree is removed in the background after the swap: it is waited for
        (at most 30 s) before it counts as left behind."""
        root = self.www.parent
        deadline = time.monotonic() + 30
        while _found(root, ".lapse-previous-*") and time.monotonic() < deadline:
            time.sleep(0.05)
        return _found(root, ".lapse-*")


def _found(root: Path, pattern: str) -> list[str]:
    """The paths under `root` matching `pattern`, sorted. A tree the host's script removes
    while it is walked (a staging directory after a lost link) is walked again."""
    while True:
        try:
            return sorted(str(path) for path in root.rglob(pattern))
        except FileNotFoundError:
            continue


def build_restore_scene(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, state_url: str
) -> RestoreScene:
    """Build the scene over 'ssh+s3' or 'local+local' and take its backup."""
    www = tmp_path / "www"
    docroot = make_awkward_site(www / "site")
    # Several chunks of random data, so a stream can be cut in its middle.
    (docroot / "uploads" / "video.bin").write_bytes(os.urandom(6 * MIB))
    os.lchown(docroot / "uploads" / "video.bin", 12345, 12346)
    neighbour = www / "neighbour"
    neighbour.mkdir()
    (neighbour / "index.html").write_text("<p>the neighbour's site</p>\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    if kind == "ssh+s3":
        s3 = request.getfixturevalue("s3_credentials")
        bucket = s3.create_bucket("rs-" + hashlib.sha256(str(tmp_path).encode()).hexdigest()[:12])
        host = ssh_host(request.getfixturevalue("sshd"), [www])
        store = s3_store(s3.endpoint_url, bucket)
    else:
        host = local_host([www])
        store = {"type": "local", "path": str(tmp_path / "backups")}
    app = backup_app(
        tmp_path,
        state_url,
        VirtualClock(NOW),
        hosts={"web1": host, "web2": local_host([tmp_path / "web2"])},
        store=store,
        accounts=[site_account("acct-1", "web1", docroot, [])],
    )
    backup = app.backups.create("acct-1")
    assert backup.status == "verified"
    return RestoreScene(app, www, docroot, neighbour, outside, backup, kind)


@pytest.fixture(params=["ssh+s3", "local+local"])
def scene(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_url: str
) -> Iterator[RestoreScene]:
    """The restore scene over SSH into S3, and on this machine into a directory."""
    built = build_restore_scene(request.param, request, tmp_path, sqlite_url)
    yield built
    built.app.transports.close()


@pytest.fixture
def ssh_scene(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_url: str
) -> Iterator[RestoreScene]:
    """The restore scene over SSH into S3 only (for faults of the SSH link)."""
    built = build_restore_scene("ssh+s3", request, tmp_path, sqlite_url)
    yield built
    built.app.transports.close()


@pytest.fixture
def state_scene(
    tmp_path: Path, state_url: str, request: pytest.FixtureRequest
) -> Iterator[RestoreScene]:
    """The restore scene on this machine, its state on SQLite and on PostgreSQL."""
    built = build_restore_scene("local+local", request, tmp_path, state_url)
    yield built
    built.app.transports.close()


def deface(docroot: Path) -> None:
    """Change the site as an attacker would after its backup: its home page rewritten, a
    web shell planted."""
    (docroot / "index.html").write_text("<h1>defaced</h1>\n")
    (docroot / "planted.php").write_text("<?php system($_GET['c']);\n")


Member = tuple[tarfile.TarInfo, bytes]


def member(
    name: str,
    kind: bytes = tarfile.REGTYPE,
    data: bytes = b"",
    *,
    link: str = "",
    mode: int = 0o644,
) -> Member:
    """One tar member for a crafted archive, owned by root, dated NOW."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.linkname = link
    info.mode = mode if kind != tarfile.DIRTYPE else 0o755
    info.mtime = int(NOW.timestamp())
    if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info.devmajor, info.devminor = 1, 3
    return info, data


def crafted_archive(members: list[Member]) -> bytes:
    """A zstd-compressed POSIX tar holding exactly `members`, in order."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return zstandard.ZstdCompressor().compress(raw.getvalue())


def store_as_backup(scene: RestoreScene, archive: bytes, *, manifest: bool = True) -> None:
    """Put `archive` in the store in place of the backup's site archive; with `manifest`,
    record its size and SHA-256 too (a store tampered with by someone who could)."""
    app, backup = scene.app, scene.backup
    assert backup.manifest is not None
    entry = backup.manifest.objects[0]
    app.backups.store.put(f"acct-1/{backup.id}/{entry.name}", archive)
    if not manifest:
        return
    entry.size, entry.sha256 = len(archive), hashlib.sha256(archive).hexdigest()
    recorded = backup.manifest.as_dict()
    app.backups.store.put(f"acct-1/{backup.id}/manifest.json", json.dumps(recorded).encode())
    with app.sessions() as session:
        row = session.get(Backup, backup.id)
        assert row is not None
        row.manifest = recorded
        session.commit()
