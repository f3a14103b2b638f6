"""The shipped plesk playbook against a Plesk stand-in on the lab sshd (see
tests/lab/panels/plesk.py for what the stand-in checks): suspension, verify,
reactivation, removal and restore, and the panel failing cleanly."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from tests.lab.panel_scene import ORIGINAL_PAGE, Panel, PanelScene, build_panel_scene, ops_alerts
from tests.lab.services.nginx import NginxServer
from tests.lab.services.sshd import SSHServer


def _seed(state: Path, user: str, home: Path, domain: str) -> None:
    path = state / "subscriptions" / f"{domain}.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"login": user, "home": str(home), "status": "OK"}))


PLESK = Panel(
    module="plesk.py",
    commands=("plesk",),
    seed=_seed,
    marker=lambda state, user, domain: state / "suspended" / domain,
    page="This subscription is suspended",
    vars=lambda state: {},
)


@pytest.fixture
def scene(tmp_path: Path, sshd: SSHServer, nginx: NginxServer) -> Iterator[PanelScene]:
    with build_panel_scene(tmp_path, sshd, nginx, PLESK, "plesk") as built:
        yield built


def subscription(scene: PanelScene) -> dict[str, str] | None:
    """The stand-in's record of the subscription, or None once Plesk has none."""
    path = scene.state / "subscriptions" / f"{scene.domain}.json"
    return json.loads(path.read_text()) if path.exists() else None


def test_suspend_verify_then_payment_reactivates(scene: PanelScene) -> None:
    scene.suspend()

    assert scene.state_of_account() == "suspended"
    assert [status for _name, status in scene.steps("suspend")] == ["done", "skipped", "done"]
    exported, *rest = scene.called()
    assert re.fullmatch(
        rf"plesk bin pleskbackup --domains-name {re.escape(scene.domain)} "
        rf"--output-file={scene.archive_dir}/lapse-archive\.\w+/pleskbackup\.tar",
        exported,
    )
    assert rest == [
        f"plesk bin subscription --info {scene.domain}",
        f"plesk bin subscription --webspace-off {scene.domain}",
        f"plesk bin subscription --info {scene.domain}",
    ]
    assert scene.panel_object(scene.backup()).source == "pleskbackup.tar"
    assert list(scene.archive_dir.iterdir()) == []  # no copy left on the host
    assert (subscription(scene) or {})["status"] == "Suspended"
    assert scene.app.runner.run_phase(scene.account_id, "verify") == "done"

    scene.reactivate()

    assert scene.state_of_account() == "active"
    assert (subscription(scene) or {})["status"] == "OK"
    assert f"plesk bin subscription --webspace-on {scene.domain}" in scene.called()
    assert scene.app.runner.run_phase(scene.account_id, "verify") == "failed"
    name, error = scene.failed_step("verify")
    assert name == "Check Plesk still reports the subscription suspended"
    assert error is not None and f"{scene.domain} is not suspended in Plesk" in error


def test_removal_through_plesk_and_restore_from_its_archive(scene: PanelScene) -> None:
    scene.suspend()
    scene.reach_deletion()

    assert scene.state_of_account() == "deleted"
    assert [status for _name, status in scene.steps("delete")] == ["done"]
    assert f"plesk bin subscription --remove {scene.domain}" in scene.called()
    assert subscription(scene) is None and not scene.home.exists()

    assert scene.app.runner.run_phase(scene.account_id, "restore") == "done"

    assert scene.called()[-2].startswith("plesk bin pleskrestore --restore ")
    assert scene.called()[-2].endswith(f" -level domains -filter list:{scene.domain}")
    assert scene.called()[-1] == f"plesk bin subscription --info {scene.domain}"
    assert (subscription(scene) or {})["status"] == "OK"
    assert (scene.docroot / "index.html").read_text() == ORIGINAL_PAGE


def test_a_full_disk_fails_the_suspension_before_anything_is_suspended(
    scene: PanelScene,
) -> None:
    (scene.state / "full_disk").touch()

    with capture_logs() as logs:
        scene.suspend()

    assert scene.state_of_account() == "suspend-failed"
    assert [status for _name, status in scene.steps("suspend")] == ["failed", "pending", "pending"]
    _name, error = scene.failed_step("suspend")
    assert error is not None and "Not enough free disk space" in error
    assert len(ops_alerts(logs, "suspend-failed")) == 1
    assert (subscription(scene) or {})["status"] == "OK"
    assert list(scene.archive_dir.iterdir()) == []  # no partial archive


def test_an_unknown_subscription_fails_the_suspension_with_ops_alerted(
    scene: PanelScene,
) -> None:
    (scene.state / "subscriptions" / f"{scene.domain}.json").unlink()

    with capture_logs() as logs:
        scene.suspend()

    assert scene.state_of_account() == "suspend-failed"
    _name, error = scene.failed_step("suspend")
    assert error is not None and f"Unable to find domain {scene.domain}" in error
    assert len(ops_alerts(logs, "suspend-failed")) == 1
    assert (scene.docroot / "index.html").read_text() == ORIGINAL_PAGE
