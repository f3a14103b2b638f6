"""Deletion proves its backup at that moment (invariant 1): the store is attacked between
the suspension's backup and the deletion, and the delete phase must notice."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import stat
import subprocess
import tarfile
from datetime import timedelta
from io import BytesIO
from pathlib import Path

import pytest
import zstandard
from sqlalchemy import update

from daemon.backup.views import BackupView
from daemon.playbooks import steps as steps_module
from daemon.playbooks.schema import StepSpec
from daemon.playbooks.steps import StepContext, StepOutcome
from daemon.store.models import ScheduledAction
from daemon.transport import Transports
from tests.e2e.daemon_process import lapse
from tests.lab.proof_scene import PAGE, ProofScene, build_proof_scene, expected_digest


def site_files(scene: ProofScene, backup: BackupView) -> dict[str, bytes]:
    """The regular files of the backup's site archive, by name."""
    data = scene.read(backup, scene.object_name(backup))
    with (
        zstandard.ZstdDecompressor().stream_reader(BytesIO(data)) as raw,
        tarfile.open(fileobj=raw, mode="r|") as archive,
    ):
        files = {}
        for member in archive:
            extracted = archive.extractfile(member) if member.isfile() else None
            if extracted is not None:
                files[member.name.removeprefix("./")] = extracted.read()
        return files


def protected_until(scene: ProofScene, backup: BackupView) -> set[object]:
    """How each object of the backup is protected in the store: the S3 retain-until of
    its current version, or the file's mode in a directory."""
    assert backup.manifest is not None
    names = ["manifest.json", *(entry.name for entry in backup.manifest.objects)]
    if scene.s3 is None:
        assert scene.store_root is not None
        folder = scene.store_root / scene.account_id / backup.id
        return {stat.S_IMODE(folder.stat().st_mode)} | {
            stat.S_IMODE((folder / name).stat().st_mode) for name in names
        }
    client = scene.s3.client()
    return {
        client.head_object(Bucket=scene.bucket_name, Key=f"acct-1/{backup.id}/{name}").get(
            "ObjectLockRetainUntilDate"
        )
        for name in names
    }


def test_deletion_proves_the_suspension_backup_and_records_the_proof(
    proof_scene: ProofScene,
) -> None:
    scene = proof_scene
    backup = scene.suspend()
    scene.reach_deletion()

    scene.app.runner.run_pending()

    assert scene.delete_action() == ("done", None)
    assert not scene.docroot.exists()
    record = scene.deletion_record()
    now = scene.clock()
    assert record.details["backup"] == backup.id
    assert record.details["proven_at"] == now.isoformat()
    assert record.details["digest"] == expected_digest(backup)
    assert record.details["protected_until"] == (now + timedelta(days=90)).isoformat()
    assert record.reason == (
        f"deletion record: removed from web1; backup {backup.id} proven at "
        f"{now.isoformat()} (SHA-256 {expected_digest(backup)})"
    )
    assert [backup.id] == [b.id for b in scene.app.backups.list(scene.account_id)]
    assert scene.alerts() == []
    expected = {0o400, 0o500} if scene.s3 is None else {now + timedelta(days=90)}
    assert protected_until(scene, backup) == expected


@pytest.mark.parametrize(
    ("how", "target"),
    [
        ("overwrite", "files"),
        ("truncate", "files"),
        ("delete", "files"),
        # History and manifest are read as bytes: only the SHA-256 and the comparison
        # with the state database's manifest can catch a same-size change.
        ("overwrite", "history"),
        ("overwrite", "manifest"),
    ],
)
def test_an_attacked_backup_is_marked_corrupt_and_a_fresh_proven_one_taken_first(
    proof_scene: ProofScene, how: str, target: str
) -> None:
    scene = proof_scene
    backup = scene.suspend()
    scene.reach_deletion()
    name = "manifest.json" if target == "manifest" else scene.object_name(backup, target)
    scene.attack(backup, how, name)

    scene.app.runner.run_pending()

    assert scene.delete_action() == ("done", None)
    assert not scene.docroot.exists()
    old, fresh = scene.app.backups.get(backup.id), scene.app.backups.list(scene.account_id)[0]
    assert old.status == "corrupt"
    assert old.error is not None and f"{name}: " in old.error
    assert (fresh.reason, fresh.status) == ("deletion", "verified")
    # The fresh backup holds the site as it was on the host before anything was removed.
    assert site_files(scene, fresh)["index.html"] == PAGE.encode()
    record = scene.deletion_record()
    assert record.details["backup"] == fresh.id
    assert record.details["digest"] == expected_digest(fresh)
    assert record.details["proven_at"] == scene.clock().isoformat()
    [(subject, body)] = scene.alerts()
    assert subject == "[lapse] backup-corrupt: acct-1"
    assert f"backup {backup.id} of acct-1 failed its proof" in body
    assert "a fresh backup is taken and proven before anything is deleted" in body
    assert scene.state() == "deleted"


def test_when_the_fresh_backup_fails_too_nothing_is_deleted_and_ops_hear_why(
    proof_scene: ProofScene,
) -> None:
    scene = proof_scene
    backup = scene.suspend()
    scene.reach_deletion()
    scene.attack(backup, "delete", scene.object_name(backup))
    if scene.s3 is None:
        # The store refuses writes: the account's directory is a file now.
        assert scene.store_root is not None
        folder = scene.store_root / scene.account_id
        shutil.rmtree(folder)
        folder.write_text("not a directory\n")
    else:
        # The link to the host is lost after the tree check passed: the backup's SSH
        # port now leads nowhere.
        unreachable_for_backups(scene)

    scene.app.runner.run_pending()

    status, error = scene.delete_action()
    assert status == "failed"
    assert error is not None and error.startswith("refused to delete, nothing was removed: ")
    assert f"backup {backup.id} of acct-1 failed its proof" in error
    assert "the fresh backup failed: " in error
    # Nothing removed: the site is there, still suspended, and the account waits for ops.
    assert (scene.docroot / "index.html").read_text() == PAGE
    assert (scene.docroot / ".suspended").exists()
    assert scene.state() == "delete-failed"
    assert [subject for subject, _ in scene.alerts()] == [
        "[lapse] backup-corrupt: acct-1",
        "[lapse] backup-failed: acct-1",
        "[lapse] delete-failed: acct-1",
    ]
    assert f"detail: {error}\n" in scene.alerts()[-1][1]
    assert scene.deletion_records() == []


def unreachable_for_backups(scene: ProofScene) -> None:
    """Point the backups' host at a loopback port nothing listens on; the runner's
    own link (its tree check) still reaches it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    host = scene.app.config.hosts["web1"].model_copy(update={"port": port})
    scene.app.backups.transports = Transports({"web1": host})


def test_a_deletion_resumed_after_a_crash_proves_again_and_never_backs_up_a_half_deleted_site(
    proof_scene: ProofScene,
) -> None:
    scene = proof_scene
    backup = scene.suspend()
    scene.reach_deletion()
    real_run = steps_module.STEP_TYPES["run"]

    class CrashBeforeRmdir:
        def run(self, spec: StepSpec, context: StepContext) -> StepOutcome:
            if spec.name == "Remove the docroot":
                raise SystemExit("power cut")
            return real_run.run(spec, context)

    steps_module.STEP_TYPES["run"] = CrashBeforeRmdir()  # type: ignore[assignment]
    try:
        with contextlib.suppress(SystemExit):
            scene.app.runner.run_pending()
    finally:
        steps_module.STEP_TYPES["run"] = real_run
    assert list(scene.docroot.iterdir()) == []  # the files went, the directory stayed
    # While the daemon was down the backup was damaged; the daemon that resumes is another.
    scene.attack(backup, "truncate", scene.object_name(backup))
    gone = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True, check=True)
    with scene.app.sessions.begin() as session:
        session.execute(
            update(ScheduledAction).values(
                claimed_by=f"{socket.gethostname()}:{gone.stdout.strip()}:0"
            )
        )

    scene.app.runner.run_pending()

    status, error = scene.delete_action()
    assert status == "failed"
    assert error is not None and error.startswith(f"refused to delete: backup {backup.id} ")
    assert error.endswith(
        "; no fresh backup: the deletion had already begun, and a half-deleted site is no backup"
    )
    assert scene.docroot.is_dir()
    assert [b.id for b in scene.app.backups.list(scene.account_id)] == [backup.id]
    assert scene.app.backups.get(backup.id).status == "corrupt"
    assert scene.state() == "delete-failed"
    assert [subject for subject, _ in scene.alerts()] == [
        "[lapse] backup-corrupt: acct-1",
        "[lapse] delete-failed: acct-1",
    ]
    assert (
        "the deletion stops, nothing more is removed (the deletion had already begun"
        in (scene.alerts()[0][1])
    )


def test_a_playbook_that_moves_the_site_aside_gets_no_fresh_backup_in_place_of_a_corrupt_one(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_url: str
) -> None:
    scene = build_proof_scene(request, tmp_path, sqlite_url, "local+local", site_in_place=False)
    backup = scene.suspend()
    scene.reach_deletion()
    scene.attack(backup, "overwrite", scene.object_name(backup))

    scene.app.runner.run_pending()

    status, error = scene.delete_action()
    assert status == "failed"
    assert error is not None and error.endswith(
        "; no fresh backup: the playbook moves the site out of its docroot while suspended "
        "(suspended_site_in_place = false), so a backup now would not hold it"
    )
    assert (scene.docroot / "index.html").read_text() == PAGE
    assert [b.id for b in scene.app.backups.list(scene.account_id)] == [backup.id]
    assert scene.state() == "delete-failed"


def test_lapse_backups_shows_the_backup_that_failed_its_proof(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_url: str
) -> None:
    scene = build_proof_scene(request, tmp_path, sqlite_url, "local+local")
    backup = scene.suspend()
    scene.reach_deletion()
    scene.attack(backup, "truncate", scene.object_name(backup))
    scene.app.runner.run_pending()
    config = tmp_path / "lapse.toml"
    config.write_text(
        f'[state]\nurl = "{sqlite_url}"\n[billing]\ntype = "file"\npath = "billing.json"\n'
        f'[backup.store]\ntype = "local"\npath = "{scene.store_root}"\n'
        '[notices.notifier]\ntype = "outbox"\npath = "outbox"\n'
    )

    listed = lapse("backups", "acct-1", "--json", "-c", str(config))

    assert listed.returncode == 0, listed.stderr
    rows = {row["id"]: row for row in json.loads(listed.stdout)}
    assert [rows[backup.id]["status"], rows[backup.id]["reason"]] == ["corrupt", "suspend"]
    assert rows[backup.id]["error"].startswith("proof at ")
    assert f"{scene.object_name(backup)}: cannot be read back: " in rows[backup.id]["error"]
    fresh = next(row for row in rows.values() if row["id"] != backup.id)
    assert [fresh["status"], fresh["reason"]] == ["verified", "deletion"]


def test_once_ops_fix_the_store_a_retry_deletes_relying_on_a_fresh_proven_backup(
    request: pytest.FixtureRequest, tmp_path: Path, state_url: str
) -> None:
    scene = build_proof_scene(request, tmp_path, state_url, "local+local")
    scene.suspend()
    scene.reach_deletion()
    assert scene.store_root is not None
    folder = scene.store_root / scene.account_id
    shutil.rmtree(folder)
    folder.write_text("not a directory\n")
    scene.app.runner.run_pending()
    assert scene.state() == "delete-failed"
    folder.unlink()  # ops fix the store

    assert scene.app.runner.retry(scene.account_id, "ops:alice") == "done"

    assert not scene.docroot.exists()
    assert scene.state() == "deleted"
    # The first try's fresh backup failed (the store refused it); the retry's is proven.
    statuses = {(b.reason, b.status) for b in scene.app.backups.list(scene.account_id)}
    assert statuses == {("suspend", "corrupt"), ("deletion", "failed"), ("deletion", "verified")}
    fresh = next(b for b in scene.app.backups.list(scene.account_id) if b.status == "verified")
    assert site_files(scene, fresh)["index.html"] == PAGE.encode()
    assert scene.deletion_record().details["backup"] == fresh.id
