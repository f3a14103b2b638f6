"""The panels' own archives as proven off-host backups, against the stand-ins on the lab
sshd (tests/lab/panels): pkgacct's cpmove-USER.tar.gz, Hestia's USER.DATE.tar and
pleskbackup's export are taken into Lapse's suspension backup (size, SHA-256 and a
listing in the manifest) and leave no copy on the host; a damaged or removed stored
archive fails the proof at deletion (a fresh backup takes its place, or the deletion is
refused); a symlink where the archive is written is never followed; and a restore puts
the very bytes the panel wrote back in the panel's hands."""

from __future__ import annotations

import hashlib
import io
import os
import re
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from structlog.testing import capture_logs

from daemon.store.models import Event, ScheduledAction
from tests.lab.panel_scene import ORIGINAL_PAGE, Panel, PanelScene, build_panel_scene, ops_alerts
from tests.lab.services.nginx import NginxServer
from tests.lab.services.sshd import SSHServer
from tests.lab.test_panel_cpanel import CPANEL
from tests.lab.test_panel_hestiacp import HESTIA
from tests.lab.test_panel_plesk import PLESK

PANELS: dict[str, Panel] = {"cpanel": CPANEL, "hestiacp": HESTIA, "plesk": PLESK}
# The stand-in command that writes each panel's archive, and the one that restores it.
WRITER = {"cpanel": "pkgacct", "hestiacp": "v-backup-user", "plesk": "pleskbackup"}
READER = {"cpanel": "restorepkg", "hestiacp": "v-restore-user", "plesk": "pleskrestore"}
SECRET = b"another client's private data\n"


@pytest.fixture(params=sorted(PANELS))
def panel(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def scene(panel: str, tmp_path: Path, sshd: SSHServer, nginx: NginxServer) -> Iterator[PanelScene]:
    with build_panel_scene(tmp_path, sshd, nginx, PANELS[panel], panel) as built:
        yield built


@pytest.fixture
def cpanel(tmp_path: Path, sshd: SSHServer, nginx: NginxServer) -> Iterator[PanelScene]:
    with build_panel_scene(tmp_path, sshd, nginx, CPANEL, "cpanel") as built:
        yield built


@pytest.fixture
def hestia(tmp_path: Path, sshd: SSHServer, nginx: NginxServer) -> Iterator[PanelScene]:
    with build_panel_scene(tmp_path, sshd, nginx, HESTIA, "hestiacp") as built:
        yield built


def victim(tmp_path: Path, name: str) -> Path:
    """Another client's file, holding SECRET, that no archive may ever take."""
    path = tmp_path / "other-client" / name
    path.parent.mkdir()
    path.write_bytes(SECRET)
    return path


def written(scene: PanelScene, command: str) -> list[list[object]]:
    """The stand-in's archives.log entries of `command` (a path, size and SHA-256 each)."""
    return [entry for entry in scene.archives() if entry[0] == command]


def site_page(archive: bytes) -> str:
    """The site's index.html as the panel archive holds it."""
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        [member] = [m for m in tar.getmembers() if m.name.endswith("public_html/index.html")]
        page = tar.extractfile(member)
        assert page is not None
        return page.read().decode()


def damage(path: Path) -> None:
    """Flip 64 bytes in the middle of a stored object: same size, other bytes."""
    data = path.read_bytes()
    middle = len(data) // 2
    path.write_bytes(
        data[:middle] + bytes(b ^ 0xFF for b in data[middle : middle + 64]) + data[middle + 64 :]
    )


def store_holds(scene: PanelScene, needle: bytes) -> bool:
    """Whether any object in the scene's store holds `needle` (decompressed where gzip)."""
    import gzip

    for path in scene.store_root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            if data[:2] == b"\x1f\x8b":
                data = gzip.decompress(data)
            if needle in data:
                return True
    return False


def test_the_panel_archive_leaves_the_host_in_the_suspension_backup(
    scene: PanelScene, panel: str
) -> None:
    scene.suspend()

    assert scene.state_of_account() == "suspended"
    backup = scene.backup()
    assert backup.status == "verified" and backup.reason == "suspend"
    entry = scene.panel_object(backup)
    stored = scene.stored(backup, entry.name).read_bytes()
    # In the store, matching its manifest entry, and the very bytes the panel wrote.
    assert (len(stored), hashlib.sha256(stored).hexdigest()) == (entry.size, entry.sha256)
    [made] = written(scene, WRITER[panel])
    assert made[2:] == [entry.size, entry.sha256]
    assert site_page(stored) == ORIGINAL_PAGE
    # Listed to its end when verified, every member safe to restore.
    listing = scene.verification(backup)[entry.name]
    assert listing["members"] >= 3 and listing["files"] >= 2 and listing["unsafe"] == []
    # No copy stays on the host: neither where Lapse had it written nor where the panel
    # keeps its own.
    assert list(scene.archive_dir.iterdir()) == []
    assert not Path(str(made[1])).exists()


def test_a_restore_gives_the_panel_back_the_bytes_it_wrote(scene: PanelScene, panel: str) -> None:
    scene.suspend()
    scene.reach_deletion()
    assert scene.state_of_account() == "deleted" and not scene.home.exists()
    backup = scene.backup()
    entry = scene.panel_object(backup)

    if panel == "cpanel":
        # `lapse restore` of a backup holding a panel archive runs the playbook's restore
        # phase: restorepkg from the archive, then Lapse's files and databases.
        lapse = str(Path(sys.executable).with_name("lapse"))
        done = subprocess.run(
            [lapse, "restore", scene.account_id, "-c", str(scene.config_path)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert f"restore phase done (backup {backup.id}" in done.stdout
    else:
        assert scene.app.runner.run_phase(scene.account_id, "restore") == "done"

    [read] = written(scene, READER[panel])[-1:]
    assert read[2:] == [entry.size, entry.sha256]
    assert not Path(str(read[1])).exists()  # handed over, then removed from the host
    assert list(scene.archive_dir.iterdir()) == []
    assert (scene.docroot / "index.html").read_text() == ORIGINAL_PAGE
    with scene.app.sessions() as session:
        reasons = list(session.scalars(select(Event.reason).where(Event.reason.like("restore%"))))
    assert f"restore of backup {backup.id} restored: web1:panel archive {entry.source}" in reasons


def test_a_damaged_panel_archive_fails_the_proof_and_a_fresh_one_is_taken(
    cpanel: PanelScene,
) -> None:
    scene = cpanel
    scene.suspend()
    relied = scene.backup()
    entry = scene.panel_object(relied)
    damage(scene.stored(relied, entry.name))

    with capture_logs() as logs:
        scene.reach_deletion()

    assert scene.state_of_account() == "deleted"
    corrupt = scene.app.backups.get(relied.id)
    assert corrupt.status == "corrupt"
    # Read back to its end: the gzip stream breaks where the bytes were flipped, or,
    # where they still decompress (the archive's own data), the SHA-256 differs.
    assert corrupt.error is not None
    assert re.search(rf"failed: {entry.name}: (cannot be read|SHA-256 differs)", corrupt.error)
    [alert] = ops_alerts(logs, "backup-corrupt")
    assert entry.name in str(alert["detail"])
    # The fresh backup the deletion relied on holds a fresh cpmove archive, proven.
    fresh = scene.backup()
    assert fresh.id != relied.id and fresh.reason == "deletion" and fresh.status == "verified"
    fresh_entry = scene.panel_object(fresh)
    assert written(scene, "pkgacct")[-1][2:] == [fresh_entry.size, fresh_entry.sha256]
    with scene.app.sessions() as session:
        record = session.scalars(select(Event).where(Event.reason.like("deletion record%"))).one()
    assert record.details["backup"] == fresh.id


def test_a_removed_panel_archive_refuses_the_deletion_when_the_panel_cannot_take_another(
    hestia: PanelScene,
) -> None:
    """Hestia refuses to back up a suspended user, so no fresh backup can hold its archive:
    nothing is deleted."""
    scene = hestia
    scene.suspend()
    relied = scene.backup()
    entry = scene.panel_object(relied)
    scene.stored(relied, entry.name).unlink()

    with capture_logs() as logs:
        scene.reach_deletion()

    assert scene.state_of_account() == "delete-failed"
    assert scene.app.backups.get(relied.id).status == "corrupt"
    with scene.app.sessions() as session:
        error = session.scalars(
            select(ScheduledAction.error).where(ScheduledAction.name == "delete")
        ).one()
    assert error is not None and "refused to delete, nothing was removed" in error
    assert entry.name in error
    assert "suspended already in Hestia" in error
    assert len(ops_alerts(logs, "backup-corrupt")) == 1
    assert not any(call.startswith("v-delete-user") for call in scene.called())
    assert (scene.docroot / "index.html").read_text() == ORIGINAL_PAGE


def test_a_symlink_the_panel_leaves_as_its_archive_is_never_followed(
    cpanel: PanelScene, tmp_path: Path
) -> None:
    scene = cpanel
    secret = victim(tmp_path, "secret.txt")
    (scene.state / "plant_symlink").write_text(str(secret))

    with capture_logs() as logs:
        scene.suspend()

    assert scene.state_of_account() == "suspend-failed"
    _name, error = scene.failed_step("suspend")
    assert error is not None and "is a symbolic link, never followed" in error
    assert len(ops_alerts(logs, "suspend-failed")) == 1
    assert scene.backup().status == "failed"
    assert not store_holds(scene, SECRET)
    assert secret.read_bytes() == SECRET
    assert list(scene.archive_dir.iterdir()) == []
    assert not any("suspendacct" in call for call in scene.called())


def test_a_work_dir_that_is_a_symlink_into_a_home_is_refused(cpanel: PanelScene) -> None:
    scene = cpanel
    scene.archive_dir.parent.mkdir(parents=True, exist_ok=True)
    scene.archive_dir.symlink_to(scene.home)

    scene.suspend()

    assert scene.state_of_account() == "suspend-failed"
    _name, error = scene.failed_step("suspend")
    assert error is not None and f"{scene.archive_dir} is not a real directory" in error
    assert not any(call.startswith("pkgacct") for call in scene.called())
    assert not list(scene.home.glob("lapse-archive.*"))


def test_a_symlink_planted_in_hestias_backup_directory_is_not_taken(
    hestia: PanelScene, tmp_path: Path
) -> None:
    scene = hestia
    secret = victim(tmp_path, "secret.tar")
    backups = scene.state / "backup"
    backups.mkdir()
    planted = backups / f"{scene.user}.2099-12-31_23-59-59.tar"
    planted.symlink_to(secret)
    # Newer than anything v-backup-user writes: only its being a link keeps it out.
    os.utime(planted, (4102444799, 4102444799), follow_symlinks=False)

    scene.suspend()

    assert scene.state_of_account() == "suspended"
    entry = scene.panel_object(scene.backup())
    [made] = written(scene, "v-backup-user")
    assert made[2:] == [entry.size, entry.sha256]
    assert not store_holds(scene, SECRET)
    assert planted.is_symlink() and secret.read_bytes() == SECRET


def test_a_restore_refuses_a_panel_archive_changed_in_the_store(cpanel: PanelScene) -> None:
    scene = cpanel
    scene.suspend()
    scene.reach_deletion()
    backup = scene.backup()
    damage(scene.stored(backup, scene.panel_object(backup).name))

    assert scene.app.runner.run_phase(scene.account_id, "restore") == "failed"

    _name, error = scene.failed_step("restore")
    assert error is not None and "differs from the backup's archive (SHA-256)" in error
    assert not any(call.startswith("restorepkg") for call in scene.called())
    assert list(scene.archive_dir.iterdir()) == []
    assert not scene.home.exists()
