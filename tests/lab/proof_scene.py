"""The deletion-proof scene: a suspended account whose delete phase is due, its site on a
host (over SSH with backups in an Object Lock bucket, or on this machine with backups in
a directory), and the attacks a store can suffer between a backup and the deletion."""

from __future__ import annotations

import email
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from daemon.backup.views import BackupView
from daemon.config.load import validate_config
from daemon.config.schema import ALL_WEEKDAYS
from daemon.domain.clock import VirtualClock
from daemon.runtime.app import App, build_app
from daemon.store.models import Account, Event, ScheduledAction
from tests.lab.backup_helpers import local_host, s3_store, site_account, ssh_host
from tests.lab.engine_helpers import run_days
from tests.lab.services.s3 import S3Server

# Sixty days ago: the deletion falls some days from now, so the S3 Object Lock the
# proof sets (checked by the server against its own clock) lies in the future.
START = datetime.now(UTC).replace(microsecond=0) - timedelta(days=60)
PAGE = "<h1>Harbour Books</h1>\n"

# A host where a site is a directory: suspension backs it up and marks it; deletion
# removes the files, then the directory (two destructive steps, to crash between).
PLAYBOOK = """
description = "Lab: a site that is a directory"

[[suspend]]
name = "Back up files and history (verified)"
type = "backup"

[[suspend]]
name = "Mark the site suspended"
type = "run"
command = "touch -- {{ service.docroot }}/.suspended"
undo = "rm -f -- {{ service.docroot }}/.suspended"

[[delete]]
name = "Remove the site's files"
type = "run"
command = "find {{ service.docroot }} -mindepth 1 -delete"

[[delete]]
name = "Remove the docroot"
type = "run"
command = "rmdir -- {{ service.docroot }}"
"""


@dataclass
class ProofScene:
    """The account, its host and store, and the app that manages them."""

    app: App
    clock: VirtualClock
    kind: str
    docroot: Path
    outbox: Path
    s3: S3Server | None
    bucket: str | None
    store_root: Path | None
    account_id: str = "acct-1"

    # -- the lifecycle -------------------------------------------------------------

    def suspend(self) -> BackupView:
        """Reach suspension and run its phase; return the suspension's backup."""
        run_days(self.app, self.clock, 40)
        assert self.state() == "suspended"
        self.app.runner.run_pending()
        [backup] = self.app.backups.list(self.account_id)
        assert backup.verified
        return backup

    def reach_deletion(self) -> None:
        """Pass the removal deadline: the delete phase is queued, not yet run."""
        run_days(self.app, self.clock, 40)
        assert self.state() == "deleted"

    def state(self) -> str:
        with self.app.sessions() as session:
            row = session.get(Account, self.account_id)
            assert row is not None
            return row.state

    def delete_action(self) -> tuple[str, str | None]:
        """The delete phase's status and error."""
        with self.app.sessions() as session:
            action = session.scalars(
                select(ScheduledAction).where(ScheduledAction.name == "delete")
            ).one()
            return action.status, action.error

    def deletion_records(self) -> list[Event]:
        with self.app.sessions() as session:
            return list(session.scalars(select(Event).where(Event.reason.like("deletion record%"))))

    def deletion_record(self) -> Event:
        [record] = self.deletion_records()
        return record

    def alerts(self) -> list[tuple[str, str]]:
        """Ops alerts e-mailed so far: (subject, body), ordered by subject. Not in the
        order they were sent: the outbox names files by Message-ID, whose leading
        hundredth of a second two alerts sent at once share (the rest is random), and
        a file's mtime is as coarse."""
        found = []
        for path in self.outbox.glob("*.eml"):
            message = email.message_from_bytes(path.read_bytes())
            subject = str(message["Subject"])
            if subject.startswith("[lapse]"):
                payload = message.get_payload(decode=True)
                assert isinstance(payload, bytes)
                found.append((subject, payload.decode()))
        return sorted(found)

    # -- the store -------------------------------------------------------------------

    def object_name(self, backup: BackupView, kind: str = "files") -> str:
        assert backup.manifest is not None
        return next(entry.name for entry in backup.manifest.objects if entry.kind == kind)

    def read(self, backup: BackupView, name: str) -> bytes:
        if self.s3 is None:
            assert self.store_root is not None
            return (self.store_root / self.account_id / backup.id / name).read_bytes()
        body = self.s3.client().get_object(Bucket=self.bucket_name, Key=self._key(backup, name))
        return body["Body"].read()

    def attack(self, backup: BackupView, how: str, name: str) -> None:
        """Damage object `name` of `backup` in the store: 'overwrite' (same size, other
        bytes), 'truncate' or 'delete'."""
        data = self.read(backup, name)
        middle = len(data) // 2
        damaged = {
            "overwrite": data[:middle]
            + bytes(b ^ 0xFF for b in data[middle : middle + 64])
            + data[middle + 64 :],
            "truncate": data[:100],
        }
        if self.s3 is None:
            assert self.store_root is not None
            path = self.store_root / self.account_id / backup.id / name
            if how == "delete":
                path.unlink()
            else:
                path.write_bytes(damaged[how])
            return
        client, key = self.s3.client(), self._key(backup, name)
        if how == "delete":
            client.delete_object(Bucket=self.bucket_name, Key=key)
        else:
            # A new version over the locked one: what anyone with write access can do.
            client.put_object(
                Bucket=self.bucket_name, Key=key, Body=damaged[how], ChecksumAlgorithm="CRC32"
            )
        if how == "overwrite":
            assert len(damaged[how]) == len(data)

    @property
    def bucket_name(self) -> str:
        assert self.bucket is not None
        return self.bucket

    def _key(self, backup: BackupView, name: str) -> str:
        return f"{self.account_id}/{backup.id}/{name}"


def expected_digest(backup: BackupView) -> str:
    """The digest a proof of `backup` must carry: SHA-256 of its identity and objects."""
    assert backup.manifest is not None
    described = {
        "account": backup.account_id,
        "backup": backup.id,
        "objects": [[entry.name, entry.size, entry.sha256] for entry in backup.manifest.objects],
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()


def build_proof_scene(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    state_url: str,
    kind: str,
    *,
    object_lock: bool = True,
    store_extra: dict[str, Any] | None = None,
    site_in_place: bool = True,
) -> ProofScene:
    """Build the scene over SSH into S3 ('ssh+s3', the bucket with Object Lock unless
    told otherwise) or on this machine into a directory ('local+local'). Without
    `site_in_place` the playbook says its suspension moves the site aside."""
    www = tmp_path / "www"
    docroot = www / "harbour"
    (docroot / "img").mkdir(parents=True)
    (docroot / "index.html").write_text(PAGE)
    (docroot / "img" / "logo.bin").write_bytes(os.urandom(300_000))
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    moves = "" if site_in_place else "suspended_site_in_place = false\n"
    (playbooks / "site-dir.toml").write_text(moves + PLAYBOOK)
    s3: S3Server | None = None
    bucket = store_root = None
    if kind == "ssh+s3":
        s3 = request.getfixturevalue("s3_credentials")
        bucket = "proof-" + hashlib.sha256(str(tmp_path).encode()).hexdigest()[:12]
        s3.client().create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=object_lock)
        host = ssh_host(request.getfixturevalue("sshd"), [www], playbook="site-dir")
        store = s3_store(s3.endpoint_url, bucket, **(store_extra or {}))
    else:
        host = local_host([www], playbook="site-dir")
        store_root = tmp_path / "backups"
        store = {"type": "local", "path": str(store_root)}
    account = site_account("acct-1", "web1", docroot, [])
    account["balance"] = "80.00"
    account["invoices"] = [{"id": "INV-1", "due_at": START.isoformat(), "total": "80.00"}]
    (tmp_path / "billing.json").write_text(json.dumps({"accounts": [account]}))
    raw = {
        "state": {"url": state_url},
        "billing": {"type": "file", "path": str(tmp_path / "billing.json")},
        "backup": {"store": store, "retention": "90d"},
        "notices": {"notifier": {"type": "outbox", "path": str(tmp_path / "outbox")}},
        "alerts": {"email": ["ops@example.net"]},
        "hosts": {"web1": host},
        "playbooks_dir": str(playbooks),
        "policy": {"default": {"quiet_hours": "", "contact_days": list(ALL_WEEKDAYS)}},
    }
    clock = VirtualClock(START)
    app = build_app(validate_config(raw, source="test", base_dir=tmp_path), clock)
    app.lifecycle.sync()
    return ProofScene(app, clock, kind, docroot, tmp_path / "outbox", s3, bucket, store_root)


@pytest.fixture(params=["ssh+s3", "local+local"])
def proof_scene(
    request: pytest.FixtureRequest, tmp_path: Path, state_url: str
) -> Iterator[ProofScene]:
    """The scene on both stores and, through `state_url`, on SQLite and PostgreSQL."""
    built = build_proof_scene(request, tmp_path, state_url, request.param)
    yield built
    built.app.transports.close()
