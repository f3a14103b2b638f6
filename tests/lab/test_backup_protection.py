"""A backup a deletion relied on is protected in its store: S3 Object Lock retention, or
read-only files in a directory; a bucket without Object Lock is said at check-config and
at start, never found out at the first deletion."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import structlog
import zstandard
from botocore.exceptions import ClientError

from daemon.backup import member_digests
from daemon.backup.proof import ProofError, prove_backup
from daemon.backup.retention import expire_backups
from daemon.backup.stores.base import BackupStoreError
from daemon.backup.stores.local import LocalStore
from daemon.runtime.service import serve
from daemon.store.models import Backup
from tests.e2e.daemon_process import lapse
from tests.lab.proof_scene import ProofScene, build_proof_scene
from tests.lab.services.s3 import S3Server


@pytest.fixture
def s3_scene(request: pytest.FixtureRequest, tmp_path: Path, sqlite_url: str) -> ProofScene:
    return build_proof_scene(request, tmp_path, sqlite_url, "ssh+s3")


@pytest.fixture
def local_scene(request: pytest.FixtureRequest, tmp_path: Path, sqlite_url: str) -> ProofScene:
    return build_proof_scene(request, tmp_path, sqlite_url, "local+local")


def test_object_lock_refuses_to_delete_or_replace_the_backup_a_deletion_relied_on(
    s3_scene: ProofScene,
) -> None:
    scene = s3_scene
    backup = scene.suspend()
    scene.reach_deletion()
    scene.app.runner.run_pending()
    assert scene.deletion_record().details["backup"] == backup.id
    client, name = scene.s3.client(), scene.object_name(backup)  # type: ignore[union-attr]
    key = f"acct-1/{backup.id}/{name}"
    original = scene.read(backup, name)
    version = client.head_object(Bucket=scene.bucket_name, Key=key)["VersionId"]

    with pytest.raises(ClientError) as refused:
        client.delete_object(Bucket=scene.bucket_name, Key=key, VersionId=version)
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    # Writing over it only adds a version: the proven one is still there, unchanged.
    client.put_object(Bucket=scene.bucket_name, Key=key, Body=b"x", ChecksumAlgorithm="CRC32")
    kept = client.get_object(Bucket=scene.bucket_name, Key=key, VersionId=version)
    assert kept["Body"].read() == original
    assert kept["ObjectLockRetainUntilDate"] == scene.clock() + timedelta(days=90)
    # The member digests verification stored beside the site archive are locked with it.
    members = client.head_object(Bucket=scene.bucket_name, Key=key + member_digests.SUFFIX)
    assert members["ObjectLockRetainUntilDate"] == scene.clock() + timedelta(days=90)


def test_without_object_lock_a_deletion_goes_ahead_unlocked_unless_required(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_url: str
) -> None:
    preferred = build_proof_scene(
        request, tmp_path / "preferred", sqlite_url, "ssh+s3", object_lock=False
    )
    preferred.suspend()
    preferred.reach_deletion()
    with structlog.testing.capture_logs() as logs:
        preferred.app.runner.run_pending()
    assert preferred.delete_action() == ("done", None)
    assert preferred.deletion_record().details["protected_until"] is None
    [warning] = [
        entry for entry in logs if entry["event"] == "deletion relies on an unlocked backup"
    ]
    assert f"s3://{preferred.bucket}/ has no Object Lock" in warning["detail"]

    required_path = tmp_path / "required"
    required_path.mkdir()
    required = build_proof_scene(
        request,
        required_path,
        f"sqlite:///{required_path / 'state.db'}",
        "ssh+s3",
        object_lock=False,
        store_extra={"object_lock": "required"},
    )
    required.suspend()
    required.reach_deletion()
    required.app.runner.run_pending()
    status, error = required.delete_action()
    assert status == "failed"
    assert error is not None and "has no Object Lock (object_lock = required)" in error
    assert required.docroot.is_dir() and required.state() == "delete-failed"


def _config(tmp_path: Path, s3: S3Server, bucket: str, object_lock: str) -> Path:
    config = tmp_path / f"lapse-{bucket}-{object_lock}.toml"
    config.write_text(
        f"""
[state]
url = "sqlite:///{tmp_path / "state.db"}"
[billing]
type = "file"
path = "billing.json"
[backup.store]
type = "s3"
bucket = "{bucket}"
endpoint_url = "{s3.endpoint_url}"
region = "us-east-1"
access_key_id = {{ env = "LAPSE_TEST_S3_KEY" }}
secret_access_key = {{ env = "LAPSE_TEST_S3_SECRET" }}
object_lock = "{object_lock}"
[notices.notifier]
type = "outbox"
path = "outbox"
"""
    )
    return config


def test_check_config_reports_a_bucket_without_object_lock(
    tmp_path: Path, s3_credentials: S3Server
) -> None:
    s3 = s3_credentials
    suffix = hashlib.sha256(str(tmp_path).encode()).hexdigest()[:10]
    plain, locked = f"plain-{suffix}", f"locked-{suffix}"
    s3.client().create_bucket(Bucket=plain)
    s3.client().create_bucket(Bucket=locked, ObjectLockEnabledForBucket=True)
    env = os.environ.copy()

    ok = lapse("check-config", "-c", str(_config(tmp_path, s3, locked, "required")), env=env)
    warned = lapse(
        "check-config", "-c", str(cfg := _config(tmp_path, s3, plain, "preferred")), env=env
    )
    failed = lapse(
        "check-config", "-c", str(cfg2 := _config(tmp_path, s3, plain, "required")), env=env
    )

    assert (ok.returncode, ok.stderr) == (0, "")
    problem = (
        f"backup.store: bucket s3://{plain} has no Object Lock, so a backup a deletion "
        "relied on can be deleted or overwritten in the store; create a bucket with Object "
        "Lock enabled and point backup.store.bucket at it"
    )
    assert warned.returncode == 0
    assert warned.stderr == f"{cfg}: warning: {problem}\n"
    assert failed.returncode == 1
    assert failed.stderr == f"{cfg2}: {problem} (object_lock = required)\n1 problem(s) found\n"
    assert "OK" not in failed.stdout


def test_the_daemon_says_so_at_start_and_will_not_start_when_object_lock_is_required(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_url: str
) -> None:
    scene = build_proof_scene(
        request,
        tmp_path,
        sqlite_url,
        "ssh+s3",
        object_lock=False,
        store_extra={"object_lock": "required"},
    )
    running = threading.Event()
    threading.Timer(10, running.set).start()  # were it to start, it stops again
    with pytest.raises(BackupStoreError) as refused:
        serve(scene.app, running)
    assert f"bucket s3://{scene.bucket} has no Object Lock" in str(refused.value)

    preferred = scene.app.config.backup.store.model_copy(update={"object_lock": "preferred"})
    object.__setattr__(scene.app.config.backup, "store", preferred)
    stop = threading.Event()
    stop.set()
    with structlog.testing.capture_logs() as logs:
        assert serve(scene.app, stop) == 0
    [warning] = [entry for entry in logs if entry["event"] == "backups cannot be protected"]
    assert f"bucket s3://{scene.bucket} has no Object Lock" in warning["problem"]


def test_the_local_store_makes_a_relied_on_backup_read_only_and_expiry_still_removes_it(
    local_scene: ProofScene,
) -> None:
    scene = local_scene
    backup = scene.suspend()
    scene.reach_deletion()
    scene.app.runner.run_pending()
    assert scene.store_root is not None
    folder = scene.store_root / "acct-1" / backup.id
    assert stat.S_IMODE(folder.stat().st_mode) == 0o500
    assert {stat.S_IMODE(path.stat().st_mode) for path in folder.iterdir()} == {0o400}

    with pytest.raises(BackupStoreError, match="is protected \\(read-only\\)"):
        scene.app.backups.store.put(f"acct-1/{backup.id}/manifest.json", b"{}")

    scene.clock.advance(timedelta(days=89))
    assert expire_backups(scene.app.backups, scene.clock()) == []
    scene.clock.advance(timedelta(days=2))
    assert expire_backups(scene.app.backups, scene.clock()) == [backup.id]
    assert not folder.exists()


def test_a_backup_holding_a_member_a_restore_refuses_is_not_proven(
    local_scene: ProofScene,
) -> None:
    scene = local_scene
    backup = scene.suspend()
    assert scene.store_root is not None and backup.manifest is not None
    name = scene.object_name(backup)
    crafted = io.BytesIO()
    with tarfile.open(fileobj=crafted, mode="w") as archive:
        member = tarfile.TarInfo("../../etc/cron.d/evil")
        member.size = 4
        archive.addfile(member, io.BytesIO(b"evil"))
    data = zstandard.ZstdCompressor().compress(crafted.getvalue())
    folder = scene.store_root / "acct-1" / backup.id
    (folder / name).write_bytes(data)
    # Store and state database agree on the crafted archive: only its listing can tell.
    with scene.app.sessions() as session:
        row = session.get(Backup, backup.id)
        assert row is not None and row.manifest is not None
        manifest = json.loads(json.dumps(row.manifest))
        entry = next(item for item in manifest["objects"] if item["name"] == name)
        entry["size"], entry["sha256"] = len(data), hashlib.sha256(data).hexdigest()
        row.manifest = manifest
        session.commit()
    stored = json.loads((folder / "manifest.json").read_text())
    stored["objects"] = manifest["objects"]
    (folder / "manifest.json").write_text(json.dumps(stored))

    with pytest.raises(ProofError) as refused:
        prove_backup(scene.app.backups, backup.id, protect_until=None)

    assert f"{name}: holds members a restore refuses: '../../etc/cron.d/evil'" in str(refused.value)
    assert scene.app.backups.get(backup.id).status == "corrupt"


AS_DAEMON_USER = """
import sys
from pathlib import Path
from daemon.backup.stores.base import BackupStoreError
from daemon.backup.stores.local import LocalStore
from daemon.backup.stores.local import LocalStore

store, action = LocalStore(Path(sys.argv[1])), sys.argv[2]
try:
    if action == "rewrite":
        store.put("acct-1/b1/files-1.tar.zst", b"other bytes")
    elif action == "write-directly":
        Path(sys.argv[1], "acct-1/b1/files-1.tar.zst").write_bytes(b"other bytes")
    else:
        print(store.delete_prefix("acct-1/b1/"))
except (BackupStoreError, OSError) as error:
    print(f"{type(error).__name__}: {error}")
"""


def test_a_protected_local_backup_resists_the_daemon_user_until_expiry_removes_it() -> None:
    """Lapse runs as its own unprivileged user (systemd/lapse.service): the read-only
    modes hold against it, and expiry still removes the backup."""
    lab = Path(tempfile.mkdtemp(prefix="lapse-protect-", dir="/tmp"))
    try:
        lab.chmod(0o755)
        store = LocalStore(lab / "backups")
        for name in ("files-1.tar.zst", "manifest.json"):
            store.put(f"acct-1/b1/{name}", b"proven bytes")
            assert store.protect(f"acct-1/b1/{name}", None, datetime.now(UTC))
        for path in [lab / "backups", *(lab / "backups").rglob("*")]:
            os.lchown(path, 65534, 65534)

        def as_nobody(action: str) -> str:
            return subprocess.run(
                [
                    "setpriv",
                    "--reuid=65534",
                    "--regid=65534",
                    "--clear-groups",
                    sys.executable,
                    "-c",
                    AS_DAEMON_USER,
                    str(lab / "backups"),
                    action,
                ],
                capture_output=True,
                text=True,
                check=True,
                cwd=lab,
            ).stdout.strip()

        assert as_nobody("rewrite") == (
            f"BackupStoreError: {lab}/backups/acct-1/b1/files-1.tar.zst is protected (read-only): "
            "it is never written over"
        )
        assert as_nobody("write-directly").startswith("PermissionError: [Errno 13]")
        assert (lab / "backups/acct-1/b1/files-1.tar.zst").read_bytes() == b"proven bytes"
        assert as_nobody("expire") == "2"
        assert not (lab / "backups" / "acct-1").exists()
    finally:
        shutil.rmtree(lab)
