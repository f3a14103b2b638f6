"""The shipped hestiacp playbook against a HestiaCP stand-in on the lab sshd (see
tests/lab/panels/hestia.py for what the stand-in checks): suspension, verify,
reactivation, deletion and restore, and the panel failing cleanly."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from tests.lab.engine_helpers import run_days
from tests.lab.panel_scene import ORIGINAL_PAGE, Panel, PanelScene, build_panel_scene, ops_alerts
from tests.lab.services.nginx import NginxServer
from tests.lab.services.sshd import SSHServer


def _seed(state: Path, user: str, home: Path, domain: str) -> None:
    conf = state / "data" / "users" / user / "user.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text(
        f"NAME='{user}'\nPACKAGE='default'\nCONTACT='{user}@{domain}'\n"
        f"BACKUPS='1'\nSUSPENDED='no'\nHOME='{home}'\n"
    )


HESTIA = Panel(
    module="hestia.py",
    commands=(
        "v-list-user",
        "v-suspend-user",
        "v-unsuspend-user",
        "v-backup-user",
        "v-restore-user",
        "v-delete-user",
    ),
    seed=_seed,
    marker=lambda state, user, domain: state / "web-suspended" / user,
    page="This site is suspended",
    vars=lambda state: {"backup_dir": str(state / "backup")},
)


@pytest.fixture
def scene(tmp_path: Path, sshd: SSHServer, nginx: NginxServer) -> Iterator[PanelScene]:
    with build_panel_scene(tmp_path, sshd, nginx, HESTIA, "hestiacp") as built:
        yield built


def hestia_user(scene: PanelScene) -> dict[str, str] | None:
    """The stand-in's user.conf of the account, or None once Hestia has no such user."""
    conf = scene.state / "data" / "users" / scene.user / "user.conf"
    if not conf.exists():
        return None
    return dict(re.findall(r"^(\w+)='(.*)'$", conf.read_text(), re.MULTILINE))


def test_backup_before_suspension_verify_then_payment_unsuspends(scene: PanelScene) -> None:
    scene.suspend()

    assert scene.state_of_account() == "suspended"
    assert [status for _name, status in scene.steps("suspend")] == ["done"] * 2
    # Hestia's backup is taken into Lapse's while the user is still active (it skips
    # suspended ones), and leaves the host with it.
    assert scene.called() == [
        f"v-list-user {scene.user} json",
        f"v-backup-user {scene.user} no",
        f"v-list-user {scene.user} json",
        f"v-suspend-user {scene.user} yes",
        f"v-list-user {scene.user} json",
    ]
    assert list((scene.state / "backup").glob(f"{scene.user}.*.tar")) == []
    assert scene.panel_object(scene.backup()).source == f"{scene.user}.tar"
    assert (hestia_user(scene) or {})["SUSPENDED"] == "yes"
    assert scene.app.runner.run_phase(scene.account_id, "verify") == "done"

    scene.reactivate()

    assert scene.state_of_account() == "active"
    assert (hestia_user(scene) or {})["SUSPENDED"] == "no"
    assert f"v-unsuspend-user {scene.user} yes" in scene.called()
    assert scene.app.runner.run_phase(scene.account_id, "verify") == "failed"
    name, error = scene.failed_step("verify")
    assert name == "Check Hestia still reports the user suspended"
    assert error is not None and f"{scene.user} is not suspended in Hestia" in error


def test_deletion_through_hestia_and_restore_from_its_backup(scene: PanelScene) -> None:
    scene.suspend()
    scene.reach_deletion()

    assert scene.state_of_account() == "deleted"
    assert [status for _name, status in scene.steps("delete")] == ["done"]
    assert f"v-delete-user {scene.user} yes" in scene.called()
    assert hestia_user(scene) is None and not scene.home.exists()

    assert scene.app.runner.run_phase(scene.account_id, "restore") == "done"

    [restored] = [call for call in scene.called() if call.startswith("v-restore-user")]
    assert re.fullmatch(rf"v-restore-user {scene.user} {scene.user}\.[0-9_-]+\.tar", restored)
    assert list((scene.state / "backup").iterdir()) == []  # placed for it, then removed
    assert (hestia_user(scene) or {})["SUSPENDED"] == "no"
    assert (scene.docroot / "index.html").read_text() == ORIGINAL_PAGE


def test_a_full_disk_fails_the_suspension_before_anything_is_suspended(
    scene: PanelScene,
) -> None:
    (scene.state / "full_disk").touch()

    with capture_logs() as logs:
        scene.suspend()

    assert scene.state_of_account() == "suspend-failed"
    assert [status for _name, status in scene.steps("suspend")] == ["failed", "pending"]
    _name, error = scene.failed_step("suspend")
    assert error is not None and "not enough diskspace available" in error
    [alert] = ops_alerts(logs, "suspend-failed")
    assert "not enough diskspace" in str(alert["detail"])
    assert (hestia_user(scene) or {})["SUSPENDED"] == "no"
    assert (scene.docroot / "index.html").read_text() == ORIGINAL_PAGE


def test_a_user_hestia_does_not_know_fails_the_deletion_and_nothing_is_removed(
    scene: PanelScene,
) -> None:
    scene.suspend()
    conf = scene.state / "data" / "users" / scene.user / "user.conf"
    conf.unlink()  # Hestia lost the user; its Unix user and home are still there

    with capture_logs() as logs:
        scene.reach_deletion()

    assert scene.state_of_account() == "delete-failed"
    _name, error = scene.failed_step("delete")
    assert error is not None and f"Hestia has no user {scene.user}" in error
    assert len(ops_alerts(logs, "delete-failed")) == 1
    assert (scene.docroot / "index.html").read_text() == ORIGINAL_PAGE
    assert not any(call.startswith("v-delete-user") for call in scene.called())


def test_a_payment_before_the_suspension_stops_the_run_before_hestia_is_asked(
    scene: PanelScene,
) -> None:
    """The balance is read again right before the first step that disables: the backup
    (which disables nothing, Hestia's own in it) is taken, v-suspend-user is never
    called."""
    run_days(scene.app, scene.clock, 40)
    scene.pay()  # paid after the suspension was decided, before the host was touched

    scene.app.runner.run_pending()

    assert [status for _name, status in scene.steps("suspend")] == ["done", "pending"]
    assert not any(call.startswith("v-suspend-user") for call in scene.called())
    assert (hestia_user(scene) or {})["SUSPENDED"] == "no"
    assert scene.state_of_account() == "active"
