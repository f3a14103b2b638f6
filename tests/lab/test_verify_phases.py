"""Every shipped playbook's verify phase fails on a site that is not suspended.

A verify phase that cannot fail proves nothing: each is run here, through the
runner, against a live site that still serves its own content (and, where the
playbook checks it, a user whose login works), and must fail at the step that
looks. Then, suspended for real, the same phase passes.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import select

from daemon.config import load_embedded_config
from daemon.config.schema import BrandConfig, HostConfig
from daemon.domain.clock import VirtualClock
from daemon.domain.snapshot import Service
from daemon.playbooks.contexts import step_variables
from daemon.playbooks.library import load_playbook
from daemon.playbooks.schema import StepSpec
from daemon.playbooks.steps import STEP_TYPES, StepContext, StepFailedError
from daemon.runtime.app import App, build_app, prepare_embedded_data
from daemon.store.models import PlaybookRun, StepRecord
from daemon.transport import Transports
from tests.lab.engine_helpers import run_days
from tests.lab.panel_scene import build_panel_scene
from tests.lab.panels.directadmin import DirectAdmin, serve
from tests.lab.playbook_scene import ORIGINAL_PAGE, Scene
from tests.lab.services.common import user_tool
from tests.lab.services.nginx import NginxServer
from tests.lab.services.sshd import SSHServer
from tests.lab.test_apache_playbook import PLAYBOOK as APACHE_PLAYBOOK
from tests.lab.test_apache_playbook import Apache, _bash, _swap_step
from tests.lab.test_apache_playbook import apache as apache
from tests.lab.test_panel_cpanel import CPANEL
from tests.lab.test_panel_directadmin import directadmin_panel
from tests.lab.test_panel_hestiacp import HESTIA
from tests.lab.test_panel_plesk import PLESK

START = datetime(2026, 11, 23, 10, 0, 5, tzinfo=UTC)


def _failed_step(app: App, account_id: str) -> tuple[str, str | None]:
    """The failed step of the account's latest verify run: (name, error)."""
    with app.sessions() as session:
        run = session.scalars(
            select(PlaybookRun)
            .where(PlaybookRun.account_id == account_id, PlaybookRun.phase == "verify")
            .order_by(PlaybookRun.id.desc())
        ).first()
        assert run is not None and run.status == "failed", run and run.status
        step = session.scalars(
            select(StepRecord).where(StepRecord.run_id == run.id, StepRecord.status == "failed")
        ).one()
        return step.name, step.error


def test_demo_verify_fails_on_a_site_that_is_not_suspended(tmp_path: Path) -> None:
    config = load_embedded_config(tmp_path / "data")
    clock = VirtualClock(START)
    prepare_embedded_data(config.billing, clock())
    app = build_app(config, clock)
    site = tmp_path / "data" / "sites" / "india"
    app.lifecycle.sync()  # india gets its final notice; its site is still live

    assert app.runner.run_phase("india", "verify") == "failed"
    name, error = _failed_step(app, "india")
    assert name == "Check the maintenance page is still in place"
    assert error is not None and f"{site}/index.html is not the maintenance page" in error

    clock.advance(timedelta(seconds=60))
    app.lifecycle.wake("india")
    app.runner.run_pending()  # suspended: the page is in place
    assert app.runner.run_phase("india", "verify") == "done"
    # The site put back by hand behind Lapse's back: verify notices.
    (site / "index.html").write_text("<p>own content</p>\n")
    assert app.runner.run_phase("india", "verify") == "failed"


def _suspend(scene: Scene) -> None:
    run_days(scene.app, scene.clock, 40)
    scene.app.runner.run_pending()
    assert scene.get().status_code == 503


def test_nginx_verify_fails_on_a_live_site(scene: Scene) -> None:
    scene.app.lifecycle.sync()
    assert scene.get().text == ORIGINAL_PAGE

    assert scene.app.runner.run_phase(scene.account_id, "verify") == "failed"
    name, error = _failed_step(scene.app, scene.account_id)
    assert name == "Check the site still answers 503 with the maintenance page"
    assert error is not None and "status 200, expected 503" in error


# Each undoes one half of the suspension's lock (or both): the password's '!' and the
# expiry date that stops SSH key logins under PAM. `passwd --status` says L for all
# three, as the scene's user is key-only ('*').
UNLOCKS = {
    "both": ["usermod", "--unlock", "--expiredate", ""],
    "expiry only": ["usermod", "--expiredate", ""],
    "password only": ["usermod", "--unlock"],
}


@pytest.mark.parametrize("how", list(UNLOCKS))
def test_nginx_verify_fails_when_the_user_can_log_in_again(scene: Scene, how: str) -> None:
    _suspend(scene)
    assert scene.app.runner.run_phase(scene.account_id, "verify") == "done"
    # Someone unlocks the user by hand while the site stays on its maintenance page.
    user_tool(*UNLOCKS[how], scene.user)

    assert scene.app.runner.run_phase(scene.account_id, "verify") == "failed"
    name, error = _failed_step(scene.app, scene.account_id)
    assert name == "Check the Unix user is locked"
    assert error is not None and f"{scene.user} is not locked" in error


def _apache_context(apache: Apache, user: str) -> tuple[list[StepSpec], StepContext]:
    """The apache-linux verify steps and the context the runner would give them."""
    playbook = load_playbook(APACHE_PLAYBOOK)
    host = HostConfig.model_validate(
        {
            "transport": "local",
            "playbook": "apache-linux",
            "allowed_roots": [str(apache.root / "www")],
            "vars": {"check_base": f"http://127.0.0.1:{apache.port}"},
        }
    )
    docroot = str(apache.root / "www" / "example.org")
    service = Service("web1", user, docroot, ("example.org",))
    context = StepContext(
        account_id="acct-1",
        phase="verify",
        service=service,
        host_name="web1",
        transport=Transports({"web1": host}).get("web1"),
        variables=step_variables("acct-1", service, host, playbook, BrandConfig(), "verify"),
        backups=cast(Any, None),  # verify steps neither back up nor render pages
        pages=cast(Any, None),
        clock=lambda: datetime.now(UTC),
        since=datetime.now(UTC),
    )
    return list(playbook.steps("verify")), context


def _verify_errors(steps: list[StepSpec], context: StepContext) -> list[str]:
    """Run every verify step; return the errors of those that failed."""
    errors = []
    for spec in steps:
        try:
            STEP_TYPES[spec.type].run(spec, context)
        except StepFailedError as error:
            errors.append(str(error))
    return errors


@pytest.fixture
def unix_user() -> Iterator[str]:
    """A throwaway Unix user, key-only ('*') and able to log in."""
    user = f"lapse-v{secrets.token_hex(3)}"
    user_tool("useradd", "--no-create-home", user)
    user_tool("usermod", "-p", "*", user)
    yield user
    user_tool("userdel", user, check=False)


def test_apache_verify_fails_on_a_live_site(apache: Apache, unix_user: str) -> None:
    steps, context = _apache_context(apache, unix_user)
    assert [spec.type for spec in steps] == ["check", "run"]

    errors = _verify_errors(steps, context)

    assert len(errors) == 2
    assert "status 200, expected 503" in errors[0]
    assert f"{unix_user} is not locked" in errors[1]


@pytest.mark.parametrize("how", list(UNLOCKS))
def test_apache_verify_passes_when_suspended_and_fails_once_unlocked(
    apache: Apache, unix_user: str, how: str
) -> None:
    steps, context = _apache_context(apache, unix_user)
    swap, _undo = _swap_step(apache)
    assert _bash(apache, swap).returncode == 0
    apache.wait_for(503)
    user_tool("usermod", "--lock", "--expiredate", "1", unix_user)
    assert _verify_errors(steps, context) == []

    user_tool(*UNLOCKS[how], unix_user)

    errors = _verify_errors(steps, context)
    assert len(errors) == 1 and f"{unix_user} is not locked" in errors[0]


# The control-panel playbooks, against their stand-ins (tests/lab/panels): the panel's
# own record of a live account, and the site it serves, fail their verify phase.
PANEL_VERIFY = {
    "cpanel": (CPANEL, "Check WHM still reports the account suspended", "is not suspended in WHM"),
    "hestiacp": (
        HESTIA,
        "Check Hestia still reports the user suspended",
        "is not suspended in Hestia",
    ),
    "plesk": (
        PLESK,
        "Check Plesk still reports the subscription suspended",
        "is not suspended in Plesk",
    ),
}


def test_directadmin_verify_fails_on_a_live_account(
    tmp_path: Path, sshd: SSHServer, nginx: NginxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAPSE_DIRECTADMIN_PASSWORD", "da-verify")
    panel = DirectAdmin(tmp_path / "panel" / "state", "da-verify")
    with (
        serve(panel) as url,
        build_panel_scene(tmp_path, sshd, nginx, directadmin_panel(url), "directadmin") as scene,
    ):
        scene.app.lifecycle.sync()

        assert scene.app.runner.run_phase(scene.account_id, "verify") == "failed"

        name, error = scene.failed_step("verify")
        assert name == "Check DirectAdmin still reports the user suspended"
        assert error is not None and "without 'suspended=yes'" in error


@pytest.mark.parametrize("playbook", list(PANEL_VERIFY))
def test_panel_verify_fails_on_a_live_account(
    playbook: str, tmp_path: Path, sshd: SSHServer, nginx: NginxServer
) -> None:
    panel, step, message = PANEL_VERIFY[playbook]
    with build_panel_scene(tmp_path, sshd, nginx, panel, playbook) as scene:
        scene.app.lifecycle.sync()
        assert scene.get().text == ORIGINAL_PAGE

        assert scene.app.runner.run_phase(scene.account_id, "verify") == "failed"

        name, error = scene.failed_step("verify")
        assert name == step
        named = scene.domain if playbook == "plesk" else scene.user
        assert error is not None and f"{named} {message}" in error
