"""Faults during a backup: the SSH link dropped, the S3 server gone, a tampered archive.

Each must leave no verified backup and no orphaned multipart upload, give a clear
error, and let a retry succeed.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zstandard
from moto.server import ThreadedMotoServer

import daemon.backup.service as backup_service
from daemon.backup.archive import UnsafeArchiveError
from daemon.backup.errors import BackupError
from daemon.backup.pump import pump
from daemon.backup.restore import RestoreRequest, restore_backup
from daemon.backup.stores.base import Upload
from daemon.domain.clock import VirtualClock
from daemon.runtime.app import App
from daemon.store.models import Backup
from daemon.transport.base import RemoteProcess
from daemon.transport.ssh import CHANNEL_WINDOW, SSHTransport
from tests.lab.backup_helpers import backup_app, local_host, s3_store, site_account
from tests.lab.backup_scene import NOW, assert_no_objects
from tests.lab.services.s3 import S3Server, start_s3

MIB = 1024 * 1024


def test_ssh_dropped_mid_stream(ssh_setup: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    app: App = ssh_setup["app"]
    # More than the SSH channel's window of random (incompressible) data: the host cannot
    # have sent the whole archive before the link goes down, so the drop is mid-stream.
    (ssh_setup["docroot"] / "uploads" / "film.bin").write_bytes(
        os.urandom(CHANNEL_WINDOW + 4 * MIB)
    )

    def dropping_pump(process: RemoteProcess, upload: Upload) -> tuple[int, str]:
        upload.write(process.read(1 << 16))
        transport = app.transports.get("web1")
        assert isinstance(transport, SSHTransport)
        transport.connection().sock.close()  # the link goes down
        return pump(process, upload)

    monkeypatch.setattr(backup_service, "pump", dropping_pump)
    with pytest.raises(BackupError, match="connection to web1 was lost"):
        app.backups.create("acct-1")
    failed = app.backups.list("acct-1")[0]
    assert failed.status == "failed"
    assert_no_objects(ssh_setup, failed.id)

    monkeypatch.setattr(backup_service, "pump", pump)
    assert app.backups.create("acct-1").status == "verified"


@pytest.fixture
def own_s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    """An S3 server of this test's own, which the test may stop."""
    server = start_s3()
    monkeypatch.setenv("LAPSE_TEST_S3_KEY", server.access_key)
    monkeypatch.setenv("LAPSE_TEST_S3_SECRET", server.secret_key)
    yield server
    server.stop()


def test_s3_stopped_mid_upload(
    tmp_path: Path, sqlite_url: str, own_s3: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    www = tmp_path / "www"
    (www / "site").mkdir(parents=True)
    # Random data does not compress: about three 8 MiB parts.
    (www / "site" / "video.bin").write_bytes(os.urandom(20 * MIB))
    bucket = own_s3.create_bucket("faults")
    app = backup_app(
        tmp_path,
        sqlite_url,
        VirtualClock(NOW),
        hosts={"web1": local_host([www])},
        store=s3_store(own_s3.endpoint_url, bucket),
        accounts=[site_account("acct-1", "web1", www / "site", [])],
    )
    port = own_s3.port

    def stopping_pump(process: RemoteProcess, upload: Upload) -> tuple[int, str]:
        upload.write(process.read(9 * MIB) + process.read(9 * MIB))  # the first part goes up
        own_s3.stop()
        return pump(process, upload)

    monkeypatch.setattr(backup_service, "pump", stopping_pump)
    with pytest.raises(BackupError) as caught:
        app.backups.create("acct-1")
    assert "files-1.tar.zst" in str(caught.value)
    failed = app.backups.list("acct-1")[0]
    assert failed.status == "failed"

    # The server comes back on the same address; the upload it holds is an orphan...
    revived = ThreadedMotoServer(ip_address=own_s3.host, port=port, verbose=False)
    revived.start()
    own_s3.server = revived
    client = own_s3.client()
    assert len(client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])) == 1

    # ...which the next upload aborts before it starts; the retry succeeds.
    monkeypatch.setattr(backup_service, "pump", pump)
    assert app.backups.create("acct-1").status == "verified"
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    listed = client.list_objects_v2(Bucket=bucket, Prefix=f"acct-1/{failed.id}/")
    assert listed.get("KeyCount", 0) == 0


def _zstd_tar(members: list[tuple[str, bytes]]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return zstandard.ZstdCompressor().compress(raw.getvalue())


def test_restore_refuses_an_archive_climbing_out(tmp_path: Path, setup: dict[str, Any]) -> None:
    """Even an archive whose manifest matches (the store was tampered with) is refused
    before anything is written."""
    app: App = setup["app"]
    backup = app.backups.create("acct-1")
    assert backup.manifest is not None
    evil = _zstd_tar([("./index.html", b"defaced\n"), ("../escaped.txt", b"owned\n")])
    entry = backup.manifest.objects[0]
    app.backups.store.put(f"acct-1/{backup.id}/{entry.name}", evil)
    entry.size, entry.sha256 = len(evil), hashlib.sha256(evil).hexdigest()
    manifest = backup.manifest.as_dict()
    app.backups.store.put(f"acct-1/{backup.id}/manifest.json", json.dumps(manifest).encode())
    with app.sessions() as session:
        row = session.get(Backup, backup.id)
        assert row is not None
        row.manifest = manifest
        session.commit()

    staging = setup["www"] / "staging" / "site"
    with pytest.raises(UnsafeArchiveError, match=r"\.\./escaped\.txt"):
        restore_backup(app.backups, RestoreRequest(backup.id, path=str(staging)))
    assert not staging.exists()
    assert not (setup["www"] / "staging" / "escaped.txt").exists()
