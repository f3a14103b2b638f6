"""An unsuspend phase that crashed or failed partway finishes its undo when resumed
(invariant 4: a crash loses nothing and repeats nothing harmful), on the real lab hosts
with the shipped nginx-linux playbook.

The unsuspend phase runs the suspend steps' undo in reverse, then checks the site. It
is cut at every step boundary (before each step, and after the last one before the run
is recorded done), inside a step, and by a failing step that ops retry; each time the
resumed phase must bring the site, the logins and the portal back, run every undo once,
and leave the suspend steps recorded undone.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
from typing import Any

import pytest
from sqlalchemy import select, update

from daemon.domain.states import RunStatus, StepStatus
from daemon.playbooks.library import load_playbook
from daemon.store.models import ScheduledAction
from tests.lab.playbook_scene import ORIGINAL_PAGE, Scene
from tests.lab.test_payment_wins import PLAYBOOKS
from tests.lab.test_playbook_nginx import account_state, steps, suspend

NGINX = load_playbook(PLAYBOOKS / "nginx-linux.toml")
# The scene's account has a domain, a Unix user, databases and a portal: every
# undoable suspend step ran and is undone, then the unsuspend phase's own steps run.
UNDONE_STEPS = [spec for spec in NGINX.steps("suspend") if spec.undoable]
UNSUSPEND_STEPS = len(UNDONE_STEPS) + len(NGINX.steps("unsuspend"))
SUSPENDED_RECORDS = ["done"] + ["undone"] * len(UNDONE_STEPS) + ["done"]


class PowerCut(BaseException):
    """The process dies: nothing after it runs, not even the runner's error handling."""


def suspended_and_paid(scene: Scene) -> None:
    """Suspend the account on the host, then the client pays: the unsuspend is queued."""
    suspend(scene)
    assert scene.get().status_code == 503 and scene.locked()
    scene.pay()
    scene.app.lifecycle.sync()
    assert actions(scene) == {"suspend": "done", "unsuspend": "pending"}


def actions(scene: Scene) -> dict[str, str]:
    with scene.app.sessions() as session:
        return dict(session.execute(select(ScheduledAction.name, ScheduledAction.status)).all())


def restart_daemon(scene: Scene) -> None:
    """The process that claimed the phase is gone (a finished shell stands in for it),
    and the next daemon runs what is due."""
    gone = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True, check=True)
    with scene.app.sessions.begin() as session:
        session.execute(
            update(ScheduledAction).values(
                claimed_by=f"{socket.gethostname()}:{gone.stdout.strip()}:0"
            )
        )
    scene.app.runner.run_pending()


def assert_everything_back(scene: Scene) -> None:
    """The site, the logins and the portal are back, each undo ran once, and the records
    say so."""
    assert actions(scene) == {"suspend": "done", "unsuspend": "done"}
    assert account_state(scene) == "active"
    page = scene.get()
    assert page.status_code == 200 and page.text == ORIGINAL_PAGE
    assert not scene.locked()
    assert scene.maria_login_works() and scene.pg_login_allowed()
    maintenance = scene.docroot.parents[1] / "lapse-state" / "maintenance" / scene.account_id
    assert not maintenance.exists()
    enabled = [body for _path, _auth, body in scene.portal.calls if body.get("enabled")]
    assert enabled == [{"enabled": True, "reason": "reactivated by Lapse"}]
    assert [status for _name, status in steps(scene, "suspend")] == SUSPENDED_RECORDS
    assert [status for _name, status in steps(scene, "unsuspend")] == ["done"] * UNSUSPEND_STEPS


def cut_at(scene: Scene, boundary: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the process die at `boundary` of the next run: right before step `boundary`
    starts, or (at the last boundary) after the last step, before the run is recorded
    done."""
    run_log = scene.app.runner.steps.run_log
    real_record, real_finish = run_log.record_step, run_log.finish_run
    started: list[int] = []

    def record_step(record_id: int, status: StepStatus, *args: Any) -> None:
        if status == StepStatus.RUNNING:
            if len(started) == boundary:
                raise PowerCut
            started.append(record_id)
        real_record(record_id, status, *args)

    def finish_run(run_id: int, status: RunStatus, error: str | None) -> None:
        if status == RunStatus.DONE and len(started) == boundary:
            raise PowerCut
        real_finish(run_id, status, error)

    monkeypatch.setattr(run_log, "record_step", record_step)
    monkeypatch.setattr(run_log, "finish_run", finish_run)


@pytest.mark.parametrize("boundary", range(UNSUSPEND_STEPS + 1))
def test_an_unsuspend_cut_at_a_step_boundary_finishes_when_resumed(
    scene: Scene, boundary: int
) -> None:
    suspended_and_paid(scene)
    with pytest.MonkeyPatch.context() as patch:
        cut_at(scene, boundary, patch)
        with contextlib.suppress(PowerCut):
            scene.app.runner.run_pending()
    unsuspend = [status for _name, status in steps(scene, "unsuspend")]
    assert unsuspend == ["done"] * boundary + ["pending"] * (UNSUSPEND_STEPS - boundary)
    assert actions(scene)["unsuspend"] == "running"

    restart_daemon(scene)

    assert_everything_back(scene)


def test_an_unsuspend_cut_inside_a_step_runs_that_step_again(scene: Scene) -> None:
    """The process dies while the Unix user's undo runs: it is run again on resume."""
    import daemon.playbooks.steps as steps_module

    suspended_and_paid(scene)
    real_run = steps_module.STEP_TYPES["run"]
    user_undo = UNDONE_STEPS[2].name
    assert user_undo.startswith("Revoke the Unix user's logins")

    class CutInside:
        def describe(self, spec: Any, context: Any) -> str:
            return real_run.describe(spec, context)

        def run(self, spec: Any, context: Any) -> Any:
            outcome = real_run.run(spec, context)
            if spec.name == user_undo:
                raise PowerCut  # the user is unlocked, its record still says running
            return outcome

    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(steps_module.STEP_TYPES, "run", CutInside())
        with contextlib.suppress(PowerCut):
            scene.app.runner.run_pending()
    unsuspend = [status for _name, status in steps(scene, "unsuspend")]
    assert unsuspend[:4] == ["done", "done", "running", "pending"]

    restart_daemon(scene)

    assert_everything_back(scene)


def test_a_failed_unsuspend_retried_by_ops_finishes_the_undo(scene: Scene) -> None:
    suspended_and_paid(scene)
    config = scene.app.config
    good = config.hosts["web1"]
    config.hosts["web1"] = good.model_copy(update={"vars": good.vars | {"nginx_test": "false"}})
    scene.app.runner.run_pending()
    assert actions(scene)["unsuspend"] == "failed"
    unsuspend = [status for _name, status in steps(scene, "unsuspend")]
    assert unsuspend == ["done", "done", "done", "failed", "pending", "pending"]
    config.hosts["web1"] = good  # ops fix the host

    assert scene.app.runner.retry(scene.account_id, "ops:alice") == "done"

    assert_everything_back(scene)
