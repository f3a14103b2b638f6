"""The tree rule in the suspend and delete phases on real hosts (sshd, nginx, MariaDB,
PostgreSQL), and the shipped delete steps' quarantine against a link swapped in at the
last moment."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from structlog.testing import capture_logs

import daemon.playbooks.guards as guards_module
from daemon.backup.tree import check_account_tree
from daemon.config.schema import BrandConfig, HostConfig
from daemon.domain.snapshot import Service
from daemon.playbooks.contexts import step_variables
from daemon.playbooks.library import load_playbook
from daemon.playbooks.templating import render_command
from daemon.store.models import Event
from tests.lab.engine_helpers import run_days
from tests.lab.playbook_scene import ORIGINAL_PAGE, Scene
from tests.lab.test_playbook_nginx import account_state, steps, suspend

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
VICTIM_PAGE = "<h1>Another client's shop</h1>\n"


def victim_site(scene: Scene) -> Path:
    """Another client's docroot beside the scene's, under the same allowed root."""
    victim = scene.docroot.parent / "victim.example.test"
    victim.mkdir()
    (victim / "index.html").write_text(VICTIM_PAGE)
    return victim


def swap_for_link(docroot: Path, target: Path) -> None:
    """What the client does: its docroot replaced with a symlink to `target`."""
    shutil.rmtree(docroot)
    os.symlink(target, docroot)


def alerts(logs: Sequence[Mapping[str, object]]) -> list[tuple[object, object]]:
    return [(entry["alert"], entry["detail"]) for entry in logs if entry["event"] == "ops alert"]


def test_a_suspension_of_a_symlinked_docroot_touches_nothing(scene: Scene) -> None:
    victim = victim_site(scene)
    swap_for_link(scene.docroot, victim)
    run_days(scene.app, scene.clock, 40)
    assert account_state(scene) == "suspended"

    with capture_logs() as logs:
        scene.app.runner.run_pending()

    assert account_state(scene) == "suspend-failed"
    assert {status for _name, status in steps(scene, "suspend")} == {"pending"}
    assert scene.app.backups.list(scene.account_id) == []  # the victim's files stored nowhere
    assert scene.vhost.read_text().count("root ") == 1 and scene.get().text == VICTIM_PAGE
    assert not scene.locked() and scene.maria_login_works()
    [(kind, detail)] = alerts(logs)
    assert kind == "suspend-failed"
    assert f"{scene.docroot} is a symbolic link" in str(detail)
    assert (victim / "index.html").read_text() == VICTIM_PAGE


def test_a_deletion_of_a_docroot_owned_by_another_user_deletes_nothing(scene: Scene) -> None:
    suspend(scene)
    run_days(scene.app, scene.clock, 40)
    assert account_state(scene) == "deleted"
    os.chown(scene.docroot, 0, 0)  # no longer the account's user's directory

    with capture_logs() as logs:
        scene.app.runner.run_pending()

    assert account_state(scene) == "delete-failed"
    assert {status for _name, status in steps(scene, "delete")} == {"pending"}
    assert (scene.docroot / "index.html").read_text() == ORIGINAL_PAGE
    assert subprocess.run(["id", scene.user], capture_output=True, check=False).returncode == 0
    assert scene.maria_db in scene.mariadb.query("SHOW DATABASES")
    [(kind, detail)] = alerts(logs)
    assert kind == "delete-failed"
    assert f"is owned by uid 0, not by {scene.user}" in str(detail)
    with scene.app.sessions() as session:
        event = session.scalars(select(Event).where(Event.to_state == "delete-failed")).one()
    assert "breaks the tree rule" in event.reason


def test_a_link_swapped_in_after_the_check_is_set_aside_not_followed(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client wins the race: its docroot becomes a link to another client's site
    right after the tree check. The delete step renames the link and refuses."""
    suspend(scene)
    run_days(scene.app, scene.clock, 40)
    victim = victim_site(scene)

    def check_then_swap(*args: Any, **kwargs: Any) -> bool:
        passed = check_account_tree(*args, **kwargs)  # the real check, unpatched
        swap_for_link(scene.docroot, victim)
        return passed

    monkeypatch.setattr(guards_module, "check_account_tree", check_then_swap)

    scene.app.runner.run_pending()

    assert account_state(scene) == "delete-failed"
    assert (victim / "index.html").read_text() == VICTIM_PAGE
    aside = scene.docroot.parent / f"{scene.docroot.name}.lapse-deleting"
    assert aside.is_symlink() and not scene.docroot.exists()
    assert steps(scene, "delete")[0][1] == "failed"
    assert scene.maria_db in scene.mariadb.query("SHOW DATABASES")  # later steps never ran


def test_deletion_leaves_no_quarantine_behind(scene: Scene) -> None:
    suspend(scene)
    run_days(scene.app, scene.clock, 40)

    scene.app.runner.run_pending()

    assert account_state(scene) == "deleted"
    assert sorted(path.name for path in scene.docroot.parent.iterdir()) == []


def _delete_step(playbook: str, root: Path, docroot: Path) -> str:
    """The shipped playbook's docroot-deleting step, rendered for `docroot`."""
    loaded = load_playbook(PLAYBOOKS / f"{playbook}.toml")
    host = HostConfig.model_validate(
        {"transport": "local", "playbook": playbook, "allowed_roots": [str(root)]}
    )
    service = Service("web1", "acme", str(docroot))
    variables = step_variables("acct-1", service, host, loaded, BrandConfig(), "delete")
    step = next(s for s in loaded.steps("delete") if s.type == "run" and "remove_tree" in s.command)
    assert step.command is not None
    return render_command(step.command, variables, step.name)


@pytest.mark.parametrize("playbook", ["nginx-linux", "apache-linux", "demo"])
def test_each_shipped_delete_step_refuses_a_link_and_removes_a_directory(
    tmp_path: Path, playbook: str
) -> None:
    root = tmp_path / "www"
    victim, docroot = root / "victim", root / "attacker"
    victim.mkdir(parents=True)
    (victim / "index.html").write_text(VICTIM_PAGE)
    os.symlink(victim, docroot)
    command = _delete_step(playbook, root, docroot)

    refused = subprocess.run(["bash", "-c", command], capture_output=True, text=True, check=False)

    assert refused.returncode == 2
    assert f"refusing to delete {docroot}: it is not a real directory" in refused.stderr
    assert (victim / "index.html").read_text() == VICTIM_PAGE

    # A real directory goes, and a second run finds nothing to do.
    os.unlink(root / "attacker.lapse-deleting")
    (docroot / "sub").mkdir(parents=True)
    (docroot / "sub" / "page.html").write_text("x")
    os.symlink(victim, docroot / "sub" / "link")  # a link inside is removed, not followed
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert sorted(path.name for path in root.iterdir()) == ["victim"]
    assert (victim / "index.html").read_text() == VICTIM_PAGE
    again = subprocess.run(["bash", "-c", command], capture_output=True, text=True, check=True)
    assert "lapse: unchanged" in again.stdout
