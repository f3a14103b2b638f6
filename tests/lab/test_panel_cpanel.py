"""The shipped cpanel playbook against a WHM stand-in on the lab sshd (see
tests/lab/panels/cpanel.py for what the stand-in checks): suspension, verify,
reactivation, removal and restore, and the panel failing cleanly."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from structlog.testing import capture_logs

from daemon.store.models import Event
from tests.lab.panel_scene import ORIGINAL_PAGE, Panel, PanelScene, build_panel_scene, ops_alerts
from tests.lab.services.common import user_tool
from tests.lab.services.nginx import NginxServer
from tests.lab.services.sshd import SSHServer

PAGE = "This Account has been suspended"
REASON = "Suspended by Lapse: unpaid invoices"


def _seed(state: Path, user: str, home: Path, domain: str) -> None:
    users = state / "var" / "cpanel" / "users"
    users.mkdir(parents=True)
    record = {"user": user, "domain": domain, "home": str(home), "suspended": False}
    (users / user).write_text(json.dumps(record | {"reason": ""}))


CPANEL = Panel(
    module="cpanel.py",
    commands=("whmapi1", "pkgacct", "restorepkg"),
    seed=_seed,
    marker=lambda state, user, domain: state / "var" / "cpanel" / "suspended" / user,
    page=PAGE,
    vars=lambda state: {},
)


@pytest.fixture
def scene(tmp_path: Path, sshd: SSHServer, nginx: NginxServer) -> Iterator[PanelScene]:
    with build_panel_scene(tmp_path, sshd, nginx, CPANEL, "cpanel") as built:
        yield built


def whm_account(scene: PanelScene) -> dict[str, object] | None:
    """The stand-in's record of the account, or None once WHM has no such account."""
    path = scene.state / "var" / "cpanel" / "users" / scene.user
    return json.loads(path.read_text()) if path.exists() else None


def whm_record(scene: PanelScene) -> dict[str, object]:
    """The stand-in's record of the account, which WHM must have."""
    record = whm_account(scene)
    assert record is not None, "WHM has no such account"
    return record


def test_suspend_verify_then_payment_unsuspends(scene: PanelScene) -> None:
    assert scene.get().text == ORIGINAL_PAGE

    scene.suspend()

    assert scene.state_of_account() == "suspended"
    assert [status for _name, status in scene.steps("suspend")] == ["done"] * 3
    # Lapse's backup first, the panel's own package in it (verified, off the host),
    # then the suspension: read first, then suspendacct with a reason, root-only.
    backup = scene.app.backups.list(scene.account_id)[0]
    assert backup.status == "verified" and backup.reason == "suspend"
    packaged, *rest = scene.called()
    assert packaged.startswith(f"pkgacct {scene.user} {scene.archive_dir}/lapse-archive.")
    assert rest == [
        f"whmapi1 --output=json accountsummary user={scene.user}",
        f"whmapi1 --output=json suspendacct user={scene.user} reason={REASON} disallowun=1",
        f"whmapi1 --output=json accountsummary user={scene.user}",
    ]
    assert scene.panel_object(backup).source == f"cpmove-{scene.user}.tar.gz"
    assert list(scene.archive_dir.iterdir()) == []  # no copy left on the host
    assert whm_record(scene) == whm_record(scene) | {
        "suspended": True,
        "reason": REASON,
        "disallowun": True,
    }
    assert PAGE in scene.get().text
    assert scene.app.runner.run_phase(scene.account_id, "verify") == "done"

    scene.reactivate()

    assert scene.state_of_account() == "active"
    assert whm_record(scene) == whm_record(scene) | {"suspended": False}
    assert scene.get().text == ORIGINAL_PAGE
    assert scene.called()[-3:] == [
        f"whmapi1 --output=json accountsummary user={scene.user}",
        f"whmapi1 --output=json unsuspendacct user={scene.user}",
        f"whmapi1 --output=json accountsummary user={scene.user}",
    ]
    # Unsuspended behind the suspension's back: verify says so.
    assert scene.app.runner.run_phase(scene.account_id, "verify") == "failed"
    name, error = scene.failed_step("verify")
    assert name == "Check WHM still reports the account suspended"
    assert error is not None and f"{scene.user} is not suspended in WHM" in error


def test_an_account_already_suspended_by_hand_stays_suspended_after_payment(
    scene: PanelScene,
) -> None:
    """Read before acting: Lapse does not lift a suspension it did not make."""
    record = whm_account(scene)
    assert record is not None
    record |= {"suspended": True, "reason": "abuse report 4711"}
    (scene.state / "var" / "cpanel" / "users" / scene.user).write_text(json.dumps(record))
    marker = scene.state / "var" / "cpanel" / "suspended" / scene.user
    marker.parent.mkdir(parents=True)
    marker.write_text("abuse report 4711\n")

    scene.suspend()
    assert scene.steps("suspend")[1] == (
        "Suspend the account in WHM (suspendacct, only root may lift it)",
        "done",
    )
    assert not any("suspendacct" in call for call in scene.called())
    scene.reactivate()

    assert whm_account(scene) == record
    assert not any("unsuspendacct" in call for call in scene.called())


def test_deletion_removes_the_account_through_whm_and_restore_brings_it_back(
    scene: PanelScene,
) -> None:
    scene.suspend()
    scene.reach_deletion()

    assert scene.state_of_account() == "deleted"
    assert [status for _name, status in scene.steps("delete")] == ["done"]
    assert f"whmapi1 --output=json removeacct username={scene.user} keepdns=0" in scene.called()
    assert whm_account(scene) is None
    assert not scene.home.exists()
    with scene.app.sessions() as session:
        record = session.scalars(select(Event).where(Event.reason.like("deletion record%"))).one()
    assert record.details["backup"] == scene.app.backups.list(scene.account_id)[0].id

    assert scene.app.runner.run_phase(scene.account_id, "restore") == "done"

    assert (scene.docroot / "index.html").read_text() == ORIGINAL_PAGE
    assert whm_record(scene) == whm_record(scene) | {"suspended": False}
    assert scene.called()[-2].startswith("restorepkg ")
    assert scene.called()[-1] == f"whmapi1 --output=json accountsummary user={scene.user}"


def test_a_full_disk_fails_the_suspension_before_anything_is_suspended(
    scene: PanelScene,
) -> None:
    (scene.state / "full_disk").touch()

    with capture_logs() as logs:
        scene.suspend()

    assert scene.state_of_account() == "suspend-failed"
    statuses = [status for _name, status in scene.steps("suspend")]
    assert statuses == ["failed", "pending", "pending"]
    _name, error = scene.failed_step("suspend")
    assert error is not None and "No space left on device" in error
    [alert] = ops_alerts(logs, "suspend-failed")
    assert "No space left on device" in str(alert["detail"])
    assert whm_record(scene) == whm_record(scene) | {"suspended": False}
    assert not any("suspendacct" in call for call in scene.called())
    assert scene.get().text == ORIGINAL_PAGE
    assert list(scene.archive_dir.iterdir()) == []  # no partial archive
    assert scene.backup().status == "failed"  # and no partial backup kept


def test_an_unknown_user_fails_the_suspension_with_ops_alerted(scene: PanelScene) -> None:
    (scene.state / "var" / "cpanel" / "users" / scene.user).unlink()

    with capture_logs() as logs:
        scene.suspend()

    assert scene.state_of_account() == "suspend-failed"
    _name, error = scene.failed_step("suspend")
    assert error is not None and f"Unable to find the user “{scene.user}”" in error
    assert len(ops_alerts(logs, "suspend-failed")) == 1
    assert scene.home.exists() and scene.get().text == ORIGINAL_PAGE


def test_removal_is_refused_when_the_home_lies_outside_the_allowed_roots(
    scene: PanelScene, tmp_path: Path
) -> None:
    """removeacct takes the whole home: a home moved outside the allowed roots (here by
    hand, as a panel migration might) keeps the account, and ops hear of it."""
    scene.suspend()
    elsewhere = tmp_path / "elsewhere" / scene.user
    elsewhere.mkdir(parents=True)
    user_tool("usermod", "--home", str(elsewhere), scene.user)

    with capture_logs() as logs:
        scene.reach_deletion()

    assert scene.state_of_account() == "delete-failed"
    _name, error = scene.failed_step("delete")
    assert error is not None and f"its home {elsewhere} is outside the allowed roots" in error
    assert len(ops_alerts(logs, "delete-failed")) == 1
    assert not any("removeacct" in call for call in scene.called())
    assert whm_account(scene) is not None and elsewhere.exists()
    assert (scene.docroot / "index.html").read_text() == ORIGINAL_PAGE
