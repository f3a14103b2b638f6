"""The shipped directadmin playbook against a DirectAdmin API stand-in on loopback
(see tests/lab/panels/directadmin.py for what it checks), with the user's tree on the
lab sshd: suspension, verify, reactivation, deletion, and the panel failing cleanly."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from tests.lab.panel_scene import ORIGINAL_PAGE, Panel, PanelScene, build_panel_scene, ops_alerts
from tests.lab.panels.directadmin import DirectAdmin, serve
from tests.lab.services.common import user_tool
from tests.lab.services.nginx import NginxServer
from tests.lab.services.sshd import SSHServer

PASSWORD = "da-admin-password-for-tests"


def directadmin_panel(url: str) -> Panel:
    """The scene's panel: users registered in the stand-in's state, the API at `url`."""

    def seed(state: Path, user: str, home: Path, domain: str) -> None:
        record = {"home": str(home), "domain": domain, "suspended": "no"}
        (state / "users" / f"{user}.json").write_text(json.dumps(record))

    return Panel(
        module="directadmin.py",
        commands=(),
        seed=seed,
        marker=lambda state, user, domain: state / "no-marker",
        page="",
        vars=lambda state: {"da_url": url},
    )


@pytest.fixture
def da_scene(
    tmp_path: Path, sshd: SSHServer, nginx: NginxServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[PanelScene, DirectAdmin]]:
    monkeypatch.setenv("LAPSE_DIRECTADMIN_PASSWORD", PASSWORD)
    panel = DirectAdmin(tmp_path / "panel" / "state", PASSWORD)
    with (
        serve(panel) as url,
        build_panel_scene(tmp_path, sshd, nginx, directadmin_panel(url), "directadmin") as built,
    ):
        yield built, panel


def test_suspend_verify_then_payment_unsuspends(da_scene: tuple[PanelScene, DirectAdmin]) -> None:
    scene, panel = da_scene

    scene.suspend()

    assert scene.state_of_account() == "suspended"
    assert [status for _name, status in scene.steps("suspend")] == ["done"] * 2
    config = ["GET", "/CMD_API_SHOW_USER_CONFIG", {"user": scene.user}]
    select = {"location": "CMD_SELECT_USERS", "select0": scene.user}
    assert panel.requests() == [
        config,
        ["POST", "/CMD_API_SELECT_USERS", select | {"dosuspend": "yes"}],
        config,
    ]
    assert (panel.user(scene.user) or {})["suspended"] == "yes"
    assert scene.app.runner.run_phase(scene.account_id, "verify") == "done"

    scene.reactivate()

    assert scene.state_of_account() == "active"
    assert (panel.user(scene.user) or {})["suspended"] == "no"
    assert ["POST", "/CMD_API_SELECT_USERS", select | {"dounsuspend": "yes"}] in panel.requests()
    assert scene.app.runner.run_phase(scene.account_id, "verify") == "failed"
    name, error = scene.failed_step("verify")
    assert name == "Check DirectAdmin still reports the user suspended"
    assert error is not None and "without 'suspended=yes'" in error


def test_a_user_suspended_by_hand_is_neither_toggled_nor_lifted(
    da_scene: tuple[PanelScene, DirectAdmin],
) -> None:
    """Read before acting: no dosuspend is sent to a suspended user, no dounsuspend after."""
    scene, panel = da_scene
    record = panel.user(scene.user) or {}
    panel.save(scene.user, record | {"suspended": "yes"})

    scene.suspend()
    scene.reactivate()

    assert (panel.user(scene.user) or {})["suspended"] == "yes"
    assert all(method == "GET" for method, _path, _form in panel.requests())


def test_deletion_through_directadmin_and_restore_once_the_user_is_back(
    da_scene: tuple[PanelScene, DirectAdmin],
) -> None:
    scene, panel = da_scene
    scene.suspend()
    scene.reach_deletion()

    assert scene.state_of_account() == "deleted"
    assert [status for _name, status in scene.steps("delete")] == ["done"] * 3
    delete = {"confirmed": "Confirm", "delete": "yes"}
    assert [
        "POST",
        "/CMD_API_SELECT_USERS",
        {"location": "CMD_SELECT_USERS", "select0": scene.user} | delete,
    ] in panel.requests()
    assert panel.user(scene.user) is None and not scene.home.exists()

    # Restore waits for the user to exist in DirectAdmin again...
    assert scene.app.runner.run_phase(scene.account_id, "restore") == "failed"
    assert scene.failed_step("restore")[0] == "Check DirectAdmin has the user again"
    # ...which the operator creates, with its home; then Lapse's backup fills it.
    user_tool("useradd", "--create-home", "--home-dir", str(scene.home), scene.user)
    panel.save(scene.user, {"home": str(scene.home), "domain": scene.domain, "suspended": "no"})

    assert scene.app.runner.run_phase(scene.account_id, "restore") == "done"
    assert (scene.docroot / "index.html").read_text() == ORIGINAL_PAGE


def test_a_wrong_password_fails_the_suspension_with_ops_alerted(
    da_scene: tuple[PanelScene, DirectAdmin], monkeypatch: pytest.MonkeyPatch
) -> None:
    scene, panel = da_scene
    monkeypatch.setenv("LAPSE_DIRECTADMIN_PASSWORD", "wrong")

    with capture_logs() as logs:
        scene.suspend()

    assert scene.state_of_account() == "suspend-failed"
    _name, error = scene.failed_step("suspend")
    assert error is not None and "answered 401" in error
    assert "wrong" not in error
    assert len(ops_alerts(logs, "suspend-failed")) == 1
    assert (panel.user(scene.user) or {})["suspended"] == "no"


def test_an_unknown_user_fails_the_suspension_and_nothing_is_removed(
    da_scene: tuple[PanelScene, DirectAdmin],
) -> None:
    scene, panel = da_scene
    (panel.state / "users" / f"{scene.user}.json").unlink()

    with capture_logs() as logs:
        scene.suspend()

    assert scene.state_of_account() == "suspend-failed"
    _name, error = scene.failed_step("suspend")
    assert error is not None and f"User {scene.user} does not exist" in error
    assert len(ops_alerts(logs, "suspend-failed")) == 1
    assert (scene.docroot / "index.html").read_text() == ORIGINAL_PAGE


def test_a_user_directadmin_lost_fails_the_deletion_and_nothing_is_removed(
    da_scene: tuple[PanelScene, DirectAdmin],
) -> None:
    """DirectAdmin without the user reads as 'deleted already'; the Unix user and its
    home still being there fail the phase instead of passing it."""
    scene, panel = da_scene
    scene.suspend()
    (panel.state / "users" / f"{scene.user}.json").unlink()

    with capture_logs() as logs:
        scene.reach_deletion()

    assert scene.state_of_account() == "delete-failed"
    name, error = scene.failed_step("delete")
    assert name == "Check the Unix user and its home are gone"
    assert error is not None and f"DirectAdmin has no user {scene.user}" in error
    assert len(ops_alerts(logs, "delete-failed")) == 1
    assert (scene.docroot / "index.html").read_text() == ORIGINAL_PAGE


def test_a_suspension_the_panel_reports_but_did_not_make_fails_the_phase(
    da_scene: tuple[PanelScene, DirectAdmin],
) -> None:
    """The state is read again after the call: `error=0` alone proves nothing."""
    scene, panel = da_scene
    panel.ignores_suspend = True

    with capture_logs() as logs:
        scene.suspend()

    assert scene.state_of_account() == "suspend-failed"
    _name, error = scene.failed_step("suspend")
    assert error is not None and "does not hold 'suspended=yes'" in error
    assert len(ops_alerts(logs, "suspend-failed")) == 1
