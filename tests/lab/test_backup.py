"""Backups end to end against the real sshd, MariaDB, PostgreSQL and S3 server."""

from __future__ import annotations

import email
import email.policy
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from daemon.backup.errors import BackupError
from daemon.backup.restore import RestoreRequest, restore_backup
from daemon.backup.verify import verify_backup
from daemon.config.schema import ALL_WEEKDAYS
from daemon.domain.clock import VirtualClock
from daemon.policy.commands import hold
from daemon.runtime.app import App
from daemon.store.models import Backup, Correspondence
from tests.lab.backup_helpers import (
    SITE_GID,
    SITE_UID,
    backup_app,
    local_host,
    s3_store,
    site_account,
    tree_fingerprint,
)
from tests.lab.backup_scene import (
    NOW,
    assert_no_objects,
    drop_postgres,
    fill_mariadb,
    mariadb_rows,
    postgres_rows,
)
from tests.lab.engine_helpers import run_days
from tests.lab.services.mariadb import MariaDBServer
from tests.lab.services.postgres import PostgresServer
from tests.lab.services.s3 import S3Server


def test_backup_verifies_and_restores_files_and_databases(
    setup: dict[str, Any], mariadb: MariaDBServer, postgres: PostgresServer
) -> None:
    app: App = setup["app"]
    backup = app.backups.create("acct-1")

    assert backup.status == "verified"
    assert backup.manifest is not None
    names = [entry.name for entry in backup.manifest.objects]
    maria_name, maria_rows = setup["maria"]
    pg_name, pg_rows = setup["pg"]
    assert names == [
        "files-1.tar.zst",
        f"db-mariadb-{maria_name}.sql.zst",
        f"db-postgresql-{pg_name}.dump",
        "history.json",
    ]
    files = backup.manifest.objects[0]
    assert files.source == str(setup["docroot"])
    assert len(files.sha256) == 64 and files.size > 0
    assert backup.manifest.tools["web1"]["tar"].startswith("tar (GNU tar)")

    # Site files into a fresh staging path: every name, mode, owner, link and byte.
    staging = setup["www"] / "restored"
    report = restore_backup(
        app.backups, RestoreRequest(backup.id, path=str(staging), databases=False)
    )
    assert [item.target for item in report.restored] == [str(staging)]
    assert tree_fingerprint(staging) == tree_fingerprint(setup["docroot"])
    assert os.lstat(staging / "config.php").st_uid == SITE_UID
    assert os.lstat(staging / "config.php").st_gid == SITE_GID
    assert os.readlink(staging / "absolute-link") == "/etc/hostname"

    # Databases dropped, then re-imported from the backup.
    mariadb.query(f"DROP DATABASE `{maria_name}`")
    drop_postgres(postgres, pg_name)
    restore_backup(app.backups, RestoreRequest(backup.id, files=False))
    assert mariadb_rows(mariadb, maria_name) == maria_rows
    assert postgres_rows(postgres, pg_name) == pg_rows


def test_history_holds_the_snapshot_and_events(setup: dict[str, Any]) -> None:
    app: App = setup["app"]
    app.lifecycle.apply_command("acct-1", hold, "ops:alice", reason="dispute #42", until=None)
    backup = app.backups.create("acct-1")
    key = f"acct-1/{backup.id}/history.json"
    history = json.loads(app.backups.store.read(key))
    assert history["account"]["id"] == "acct-1"
    assert history["billing_snapshot"]["services"][0]["docroot"] == str(setup["docroot"])
    assert [(event["to"], event["actor"]) for event in history["events"]] == [
        ("on-hold", "ops:alice")
    ]
    assert "dispute #42" in history["events"][0]["reason"]


def test_a_failing_dump_leaves_no_backup_and_a_retry_succeeds(
    setup: dict[str, Any], mariadb: MariaDBServer
) -> None:
    app: App = setup["app"]
    maria_name, _rows = setup["maria"]
    mariadb.query(f"RENAME TABLE `{maria_name}`.posts TO `{maria_name}`.posts_moved")
    mariadb.query(f"DROP DATABASE `{maria_name}`")

    with pytest.raises(BackupError) as caught:
        app.backups.create("acct-1")
    message = str(caught.value)
    assert f"dump of mariadb database {maria_name}" in message
    assert "Unknown database" in message
    assert mariadb.root_password not in message

    failed = app.backups.list("acct-1")[0]
    assert failed.status == "failed" and failed.error == message
    assert_no_objects(setup, failed.id)

    fill_mariadb(mariadb, maria_name)
    assert app.backups.create("acct-1").status == "verified"


def test_a_changed_object_fails_verification(setup: dict[str, Any]) -> None:
    app: App = setup["app"]
    backup = app.backups.create("acct-1")
    assert backup.manifest is not None
    dump = backup.manifest.objects[1].name
    key = f"acct-1/{backup.id}/{dump}"
    data = bytearray(app.backups.store.read(key))
    data[len(data) // 2] ^= 0xFF
    app.backups.store.put(key, bytes(data))

    report = verify_backup(app.backups, backup.id)

    assert not report.ok
    assert any(dump in problem for problem in report.problems())
    assert app.backups.get(backup.id).status == "corrupt"
    with pytest.raises(BackupError, match="corrupt"):
        restore_backup(app.backups, RestoreRequest(backup.id))


def test_a_docroot_outside_the_allowed_roots_is_refused(tmp_path: Path, sqlite_url: str) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    app = backup_app(
        tmp_path,
        sqlite_url,
        VirtualClock(NOW),
        hosts={"web1": local_host([tmp_path / "www"])},
        store={"type": "local", "path": str(tmp_path / "backups")},
        accounts=[site_account("acct-1", "web1", outside, [])],
    )
    with pytest.raises(BackupError, match="outside the host's allowed_roots"):
        app.backups.create("acct-1")


def test_a_symlinked_docroot_is_refused_even_inside_the_roots(
    tmp_path: Path, sqlite_url: str
) -> None:
    (tmp_path / "www").mkdir()
    (tmp_path / "secret").mkdir()
    os.symlink(tmp_path / "secret", tmp_path / "www" / "site")
    app = backup_app(
        tmp_path,
        sqlite_url,
        VirtualClock(NOW),
        hosts={"web1": local_host([tmp_path / "www"])},
        store={"type": "local", "path": str(tmp_path / "backups")},
        accounts=[site_account("acct-1", "web1", tmp_path / "www" / "site", [])],
    )
    with pytest.raises(BackupError, match="www/site is a symbolic link"):
        app.backups.create("acct-1")


def test_download_link_serves_the_archive(setup: dict[str, Any]) -> None:
    app: App = setup["app"]
    backup = app.backups.create("acct-1")
    links = app.backups.download_links(backup.id)
    if setup["s3"] is None:
        assert links == {}  # a directory on the Lapse machine is no link for a client
        return
    assert backup.manifest is not None
    files = backup.manifest.objects[0]
    response = httpx.get(links[files.name], timeout=30)
    assert response.status_code == 200
    assert hashlib.sha256(response.content).hexdigest() == files.sha256
    assert "X-Amz-Expires=604800" in links[files.name]


def test_interrupted_backups_are_marked_failed(setup: dict[str, Any]) -> None:
    app: App = setup["app"]
    with app.sessions() as session:
        session.add(
            Backup(
                id="20261102T090000Z-dead00",
                account_id="acct-1",
                store=app.backups.store.kind,
                location="-",
                status="running",
                reason="suspension",
                created_at=NOW,
            )
        )
        session.commit()
    assert app.backups.recover_interrupted() == 1
    row = app.backups.get("20261102T090000Z-dead00")
    assert row.status == "failed" and row.error is not None and "interrupted" in row.error


def test_the_removal_warning_carries_a_download_link(
    tmp_path: Path, sqlite_url: str, s3_credentials: S3Server
) -> None:
    """A removal warning offers a presigned link to the verified backup that works.
    (The suspension notice's link, which follows the suspend phase, is covered in
    test_notices_after_acts.py.)"""
    www = tmp_path / "www"
    (www / "site").mkdir(parents=True)
    (www / "site" / "index.html").write_text("<p>shop</p>")
    bucket = s3_credentials.create_bucket("links")
    overdue = site_account("acct-9", "web1", www / "site", [])
    overdue["balance"] = "30.00"
    overdue["invoices"] = [
        {"id": "INV-9", "due_at": NOW.isoformat(), "total": "30.00", "items": []}
    ]
    clock = VirtualClock(NOW)
    app = backup_app(
        tmp_path,
        sqlite_url,
        clock,
        hosts={"web1": local_host([www])},
        store=s3_store(s3_credentials.endpoint_url, bucket),
        accounts=[overdue],
        policy={"quiet_hours": "", "contact_days": list(ALL_WEEKDAYS)},
    )
    backup = app.backups.create("acct-9", reason="suspension")

    run_days(app, clock, 60)

    with app.sessions() as session:
        letter = session.scalars(
            select(Correspondence).where(Correspondence.notice == "removal-warning")
        ).first()
    assert letter is not None
    text = email.message_from_bytes(letter.raw, policy=email.policy.default)
    body = text.get_body(preferencelist=("plain",))
    assert body is not None
    content = body.get_content()
    link = next(word for word in content.split() if word.startswith("http://127.0.0.1"))
    assert f"/{bucket}/acct-9/{backup.id}/files-1.tar.zst?" in link
    assert httpx.get(link, timeout=30).status_code == 200


@pytest.mark.parametrize("checksums", [True, False])
def test_parts_carry_a_crc32_unless_turned_off(
    tmp_path: Path, sqlite_url: str, s3_credentials: S3Server, checksums: bool
) -> None:
    www = tmp_path / "www"
    (www / "site").mkdir(parents=True)
    (www / "site" / "big.bin").write_bytes(os.urandom(12 * 1024 * 1024))  # two parts
    bucket = s3_credentials.create_bucket(f"crc-{str(checksums).lower()}")
    app = backup_app(
        tmp_path,
        sqlite_url,
        VirtualClock(NOW),
        hosts={"web1": local_host([www])},
        store=s3_store(s3_credentials.endpoint_url, bucket, part_checksums=checksums),
        accounts=[site_account("acct-5", "web1", www / "site", [])],
    )
    backup = app.backups.create("acct-5")
    assert backup.status == "verified"

    head = s3_credentials.client().head_object(
        Bucket=bucket, Key=f"acct-5/{backup.id}/files-1.tar.zst", ChecksumMode="ENABLED"
    )
    if checksums:
        assert head["ChecksumCRC32"]  # the server checked and kept the parts' CRC32s
    else:
        assert "ChecksumCRC32" not in head
