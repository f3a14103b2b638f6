"""The shipped nginx-linux playbook on real hosts: sshd, nginx, MariaDB, PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from pathlib import Path

from sqlalchemy import select, update

from daemon.policy import commands
from daemon.store.models import Account, Event, PlaybookRun, ScheduledAction, StepRecord
from tests.lab.engine_helpers import run_days
from tests.lab.playbook_scene import ORIGINAL_PAGE, PORTAL_TOKEN, Scene


def suspend(scene: Scene) -> None:
    """Let the lifecycle reach suspension, then run the queued suspend phase."""
    run_days(scene.app, scene.clock, 40)
    assert account_state(scene) == "suspended"
    scene.app.runner.run_pending()


def pay_and_reactivate(scene: Scene) -> None:
    """The client pays: the next sync reactivates and the runner undoes the suspension."""
    scene.pay()
    scene.app.lifecycle.sync()
    scene.app.runner.run_pending()


def account_state(scene: Scene) -> str:
    with scene.app.sessions() as session:
        row = session.get(Account, scene.account_id)
        assert row is not None
        return row.state


def steps(scene: Scene, phase: str) -> list[tuple[str, str]]:
    with scene.app.sessions() as session:
        rows = session.execute(
            select(StepRecord.name, StepRecord.status)
            .join(PlaybookRun, StepRecord.run_id == PlaybookRun.id)
            .where(PlaybookRun.phase == phase)
            .order_by(StepRecord.run_id, StepRecord.position)
        ).all()
    return [(name, status) for name, status in rows]


def test_the_maintenance_page_is_in_the_language_the_visitor_asks_for(scene: Scene) -> None:
    suspend(scene)

    german = scene.get(languages="de-DE,de;q=0.9,en;q=0.5")
    japanese = scene.get("/any/page.php", languages="ja")
    unknown, plain = scene.get(languages="xx"), scene.get()

    assert german.status_code == japanese.status_code == 503
    assert '<html lang="de">' in german.text and "vorübergehend nicht erreichbar" in german.text
    assert '<html lang="ja">' in japanese.text and "一時的にご利用いただけません" in japanese.text
    for page in (unknown, plain):  # the brand's language: English by default
        assert page.status_code == 503
        assert '<html lang="en">' in page.text and "is temporarily unavailable" in page.text
    for page in (german, japanese, plain):
        assert "lapse-maintenance-page" in page.text and scene.domain in page.text
        assert "Accept-Language" in page.headers["Vary"]


def test_suspend_then_payment_brings_everything_back(scene: Scene) -> None:
    assert scene.get().status_code == 200

    suspend(scene)

    # Every step done, in order, backup first.
    recorded = steps(scene, "suspend")
    assert recorded[0] == ("Back up files, databases and history (verified)", "done")
    assert [status for _name, status in recorded] == ["done"] * 7
    assert len(scene.app.backups.list(scene.account_id)) == 1
    assert scene.app.backups.list(scene.account_id)[0].verified

    # The public sees a maintenance page: 503, Retry-After, noindex, no client details.
    page = scene.get()
    assert page.status_code == 503
    assert page.headers["Retry-After"] == "3600"
    assert page.headers["X-Robots-Tag"] == "noindex, nofollow"
    assert scene.domain in page.text and "support@" in page.text
    assert "Rita" not in page.text and "49.90" not in page.text
    assert scene.get("/any/deep/path.php").status_code == 503
    # Certificates keep renewing.
    acme = scene.get("/.well-known/acme-challenge/token-1")
    assert acme.status_code == 200 and acme.text == "acme-proof\n"

    # Logins revoked: password locked and expired, keys set aside, cron saved and cleared.
    assert scene.locked()
    home = scene.docroot.parent.parent / "home" / scene.user
    assert not (home / ".ssh" / "authorized_keys").exists()
    assert (home / ".ssh" / "authorized_keys.lapse-disabled").exists()
    cron = subprocess.run(["crontab", "-l", "-u", scene.user], capture_output=True, check=False)
    assert cron.returncode != 0  # no crontab any more
    assert not scene.maria_login_works()
    assert not scene.pg_login_allowed()
    assert scene.portal.calls[-1][1:] == (
        f"Bearer {PORTAL_TOKEN}",
        {"enabled": False, "reason": "suspended by Lapse"},
    )

    # The client pays: the next sync reactivates and the runner undoes it all, in reverse.
    pay_and_reactivate(scene)

    assert account_state(scene) == "active"
    page = scene.get()
    assert page.status_code == 200 and page.text == ORIGINAL_PAGE
    assert not scene.locked()
    assert (home / ".ssh" / "authorized_keys").exists()
    restored = subprocess.run(
        ["crontab", "-l", "-u", scene.user], capture_output=True, text=True, check=True
    )
    assert "*/5 * * * * true" in restored.stdout
    assert scene.maria_login_works()
    assert scene.pg_login_allowed()
    assert scene.portal.calls[-1][2] == {"enabled": True, "reason": "reactivated by Lapse"}
    undone = [status for _name, status in steps(scene, "suspend")]
    assert undone == ["done", "undone", "undone", "undone", "undone", "undone", "done"]
    assert all(status == "done" for _name, status in steps(scene, "unsuspend"))


def test_payment_before_the_first_disabling_step_stops_the_run(scene: Scene) -> None:
    run_days(scene.app, scene.clock, 40)
    scene.pay()  # paid after the suspension was decided, before the host was touched

    scene.app.runner.run_pending()

    assert scene.get().text == ORIGINAL_PAGE
    assert not scene.locked()
    recorded = steps(scene, "suspend")
    assert recorded[0][1] == "done"  # the backup
    assert {status for _name, status in recorded[1:]} == {"pending"}
    with scene.app.sessions() as session:
        suspend_action = session.scalars(
            select(ScheduledAction).where(ScheduledAction.name == "suspend")
        ).one()
        assert suspend_action.status == "cancelled"
        assert "paid" in (suspend_action.error or "")
    # The wake-up after the stop reactivated the account.
    assert account_state(scene) == "active"


def test_a_failing_step_stops_marks_and_keeps_the_site_up(scene: Scene) -> None:
    config = scene.app.config
    host = config.hosts["web1"]
    broken = host.model_copy(update={"vars": host.vars | {"nginx_test": "false"}})
    config.hosts["web1"] = broken

    suspend(scene)

    assert account_state(scene) == "suspend-failed"
    recorded = steps(scene, "suspend")
    assert [status for _name, status in recorded[:4]] == ["done", "done", "failed", "pending"]
    # nginx -t "failed": the original vhost was put back, the site still serves.
    assert scene.get().text == ORIGINAL_PAGE
    assert not scene.locked()  # the later, destructive steps never ran
    with scene.app.sessions() as session:
        event = session.scalars(select(Event).where(Event.to_state == "suspend-failed")).one()
    assert "nginx rejected the maintenance config" in event.reason
    assert event.actor == "runner"


def test_a_crashed_run_resumes_at_its_first_unfinished_step(scene: Scene) -> None:
    import daemon.playbooks.steps as steps_module

    real_run = steps_module.STEP_TYPES["run"]

    class Crash:
        def describe(self, spec: object, context: object) -> str:
            return "crash"

        def run(self, spec: object, context: object) -> object:
            raise SystemExit("power cut")

    steps_module.STEP_TYPES["run"] = Crash()  # type: ignore[assignment]
    try:
        run_days(scene.app, scene.clock, 40)
        with contextlib.suppress(SystemExit):
            scene.app.runner.run_pending()
    finally:
        steps_module.STEP_TYPES["run"] = real_run
    statuses = [status for _name, status in steps(scene, "suspend")]
    assert statuses[:3] == ["done", "done", "running"]

    # While the process that claimed it lives, no one else resumes the run.
    scene.app.runner.run_pending()
    assert [status for _name, status in steps(scene, "suspend")] == statuses
    # The process is gone (a finished shell stands in for it): the next daemon resumes.
    gone = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True, check=True)
    with scene.app.sessions.begin() as session:
        session.execute(
            update(ScheduledAction).values(
                claimed_by=f"{socket.gethostname()}:{gone.stdout.strip()}:0"
            )
        )

    scene.app.runner.run_pending()  # the restarted daemon

    assert [status for _name, status in steps(scene, "suspend")] == ["done"] * 7
    assert len(scene.app.backups.list(scene.account_id)) == 1  # the backup was not repeated
    assert scene.get().status_code == 503


def test_deletion_removes_everything_and_records_it(scene: Scene) -> None:
    suspend(scene)
    run_days(scene.app, scene.clock, 40)  # past the removal deadline and its warnings
    assert account_state(scene) == "deleted"

    scene.app.runner.run_pending()

    assert not scene.docroot.exists()
    assert not scene.vhost.exists()
    assert scene.get().status_code == 200 and scene.get().text != ORIGINAL_PAGE  # lab default
    assert subprocess.run(["id", scene.user], capture_output=True, check=False).returncode != 0
    databases = scene.mariadb.query("SHOW DATABASES")
    assert scene.maria_db not in databases
    with scene.postgres.connect() as connection:
        assert not connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (scene.pg_db,)
        ).fetchone()
    with scene.app.sessions() as session:
        record = session.scalars(select(Event).where(Event.reason.like("deletion record%"))).one()
    backup = scene.app.backups.list(scene.account_id)[0]
    assert record.details["backup"] == backup.id
    assert str(scene.docroot) in record.details["removed"]


def test_deletion_with_a_corrupt_backup_relies_on_a_fresh_proven_one(scene: Scene) -> None:
    suspend(scene)
    # The suspension backup turns out corrupt: deletion must not rely on it.
    backup = scene.app.backups.list(scene.account_id)[0]
    archive = next(path for path in (scene.docroot.parents[1] / "backups").rglob("files-1.tar.*"))
    os.truncate(archive, 10)
    from daemon.backup.verify import verify_backup

    assert not verify_backup(scene.app.backups, backup.id).ok
    run_days(scene.app, scene.clock, 40)

    scene.app.runner.run_pending()

    assert account_state(scene) == "deleted"
    assert not scene.docroot.exists()
    fresh = scene.app.backups.list(scene.account_id)[0]
    assert (fresh.reason, fresh.status) == ("deletion", "verified")
    with scene.app.sessions() as session:
        record = session.scalars(select(Event).where(Event.reason.like("deletion record%"))).one()
    assert record.details["backup"] == fresh.id


def test_a_failed_suspension_is_retried_from_the_failed_step(scene: Scene) -> None:
    config = scene.app.config
    good = config.hosts["web1"]
    config.hosts["web1"] = good.model_copy(update={"vars": good.vars | {"nginx_test": "false"}})
    suspend(scene)
    assert account_state(scene) == "suspend-failed"
    config.hosts["web1"] = good  # ops fix the host

    assert scene.app.runner.retry(scene.account_id, "ops:alice") == "done"

    assert account_state(scene) == "suspended"
    assert scene.get().status_code == 503 and scene.locked()
    assert len(scene.app.backups.list(scene.account_id)) == 1
    with scene.app.sessions() as session:
        retried = session.scalars(select(Event).where(Event.actor == "ops:alice")).one()
    assert (retried.from_state, retried.to_state) == ("suspend-failed", "suspended")


def test_restore_brings_a_deleted_site_back(scene: Scene) -> None:
    suspend(scene)
    run_days(scene.app, scene.clock, 40)
    scene.app.runner.run_pending()
    assert not scene.docroot.exists()

    assert scene.app.runner.run_phase(scene.account_id, "restore") == "done"

    assert subprocess.run(["id", scene.user], capture_output=True, check=False).returncode == 0
    assert (scene.docroot / "index.html").read_text() == ORIGINAL_PAGE
    # nginx applies a reload a moment after it is asked to.
    deadline = time.monotonic() + 10
    while (page := scene.get()).text != ORIGINAL_PAGE and time.monotonic() < deadline:
        time.sleep(0.2)
    assert page.status_code == 200 and page.text == ORIGINAL_PAGE
    assert scene.mariadb.query(f"SELECT id FROM `{scene.maria_db}`.t").split() == ["7"]
    with scene.postgres.connect(scene.pg_db) as connection:
        assert connection.execute("SELECT id FROM posts").fetchall() == [(42,)]


def test_a_payment_during_the_run_stops_it_and_undoes_what_was_done(scene: Scene) -> None:
    """The payment lands (a webhook, a sync) while the suspension is half done."""
    import daemon.playbooks.steps as steps_module

    real_put = steps_module.STEP_TYPES["put_file"]

    class PayAfterwards:
        def describe(self, spec: object, context: object) -> str:
            return real_put.describe(spec, context)  # type: ignore[arg-type]

        def run(self, spec: object, context: object) -> object:
            outcome = real_put.run(spec, context)  # type: ignore[arg-type]
            scene.pay()
            scene.app.lifecycle.sync()
            return outcome

    steps_module.STEP_TYPES["put_file"] = PayAfterwards()  # type: ignore[assignment]
    try:
        run_days(scene.app, scene.clock, 40)
        scene.app.runner.run_pending()
    finally:
        steps_module.STEP_TYPES["put_file"] = real_put

    assert account_state(scene) == "active"
    statuses = [status for _name, status in steps(scene, "suspend")]
    assert statuses == ["done", "undone", "pending", "pending", "pending", "pending", "pending"]
    assert scene.get().text == ORIGINAL_PAGE and not scene.locked()
    maintenance = scene.docroot.parents[1] / "lapse-state" / "maintenance" / scene.account_id
    assert not maintenance.exists()  # the page uploaded before the payment was removed
    with scene.app.sessions() as session:
        actions = dict(session.execute(select(ScheduledAction.name, ScheduledAction.status)).all())
    assert actions == {"suspend": "cancelled", "unsuspend": "done"}


def test_ops_suspend_and_unsuspend_a_paying_account_on_the_real_host(scene: Scene) -> None:
    """`lapse suspend` takes a paid-up site down at once and keeps it down through
    payments; `lapse unsuspend` brings it back. Both are recorded with the operator."""
    scene.pay()
    scene.app.lifecycle.sync()
    assert account_state(scene) == "active"
    scene.app.lifecycle.apply_command(
        scene.account_id, commands.suspend, "ops:oncall", reason="phishing kit found"
    )
    assert scene.app.runner.run_queued(scene.account_id) == [("suspend", "done")]
    assert scene.get().status_code == 503
    assert scene.locked()
    run_days(scene.app, scene.clock, 60)  # paid all along: the site stays down
    assert account_state(scene) == "ops-suspended"
    assert scene.get().status_code == 503

    scene.app.lifecycle.apply_command(
        scene.account_id, commands.unsuspend, "ops:oncall", reason="cleaned"
    )
    assert scene.app.runner.run_queued(scene.account_id) == [("unsuspend", "done")]
    assert scene.get().text == ORIGINAL_PAGE
    assert not scene.locked()
    with scene.app.sessions() as session:
        events = session.execute(
            select(Event.to_state, Event.actor, Event.reason)
            .where(Event.account_id == scene.account_id, Event.actor == "ops:oncall")
            .order_by(Event.id)
        ).all()
    assert [tuple(row) for row in events] == [
        ("ops-suspended", "ops:oncall", "suspended by ops: phishing kit found"),
        ("active", "ops:oncall", "ops suspension lifted: cleaned"),
    ]


def test_a_phase_paused_for_a_stop_resumes_in_the_same_process(scene: Scene) -> None:
    """A reload (SIGHUP) stops the runner between steps and starts a new one in the same
    process: the paused phase must be resumed there, not left to a restart."""
    import daemon.playbooks.steps as steps_module

    real_put = steps_module.STEP_TYPES["put_file"]
    runner = scene.app.runner

    class StopAfter:
        def describe(self, spec: object, context: object) -> str:
            return real_put.describe(spec, context)  # type: ignore[arg-type]

        def run(self, spec: object, context: object) -> object:
            outcome = real_put.run(spec, context)  # type: ignore[arg-type]
            runner.stop_requested.set()  # SIGHUP arrives while this step runs
            return outcome

    steps_module.STEP_TYPES["put_file"] = StopAfter()  # type: ignore[assignment]
    try:
        run_days(scene.app, scene.clock, 40)
        runner.run_pending()
    finally:
        steps_module.STEP_TYPES["put_file"] = real_put
    assert [status for _name, status in steps(scene, "suspend")][:3] == [
        "done",
        "done",
        "pending",
    ]
    with scene.app.sessions() as session:
        action = session.scalars(select(ScheduledAction)).one()
        assert (action.status, action.claimed_by) == ("running", None)

    runner.stop_requested.clear()  # the reloaded runner
    runner.run_pending()

    assert [status for _name, status in steps(scene, "suspend")] == ["done"] * 7
    assert len(scene.app.backups.list(scene.account_id)) == 1
    assert scene.get().status_code == 503


def kept_original(scene: Scene) -> Path:
    """Where nginx-linux keeps a suspended site's original vhost: under the state_dir."""
    state_dir = scene.docroot.parent.parent / "lapse-state"  # the scene's vars.state_dir
    return state_dir / "vhosts" / scene.vhost.name


def site_files(scene: Scene) -> list[str]:
    """The names of the files in nginx's sites dir that concern the scene's site."""
    return sorted(p.name for p in scene.nginx.sites_dir.iterdir() if scene.domain in p.name)


def test_suspension_leaves_nothing_but_the_vhost_in_the_sites_dir(scene: Scene) -> None:
    """Debian's nginx includes every file in sites-enabled: a copy of the original vhost
    kept there would be loaded too (with a default_server, nginx -t then fails)."""
    original = scene.vhost.read_text()
    assert site_files(scene) == [scene.vhost.name]

    suspend(scene)

    assert scene.get().status_code == 503
    assert site_files(scene) == [scene.vhost.name]
    saved = kept_original(scene)
    assert saved.read_text() == original

    pay_and_reactivate(scene)

    assert scene.vhost.read_text() == original
    assert not saved.exists()
    assert scene.get().text == ORIGINAL_PAGE


def test_an_original_kept_beside_the_vhost_by_an_older_release_is_still_put_back(
    scene: Scene,
) -> None:
    original = scene.vhost.read_text()
    suspend(scene)
    # As releases before 2026-11 left a suspended site: the original beside the vhost.
    saved = kept_original(scene)
    legacy = scene.vhost.with_name(scene.vhost.name + ".lapse-original")
    saved.rename(legacy)

    pay_and_reactivate(scene)

    assert scene.vhost.read_text() == original
    assert not legacy.exists()
    assert scene.get().text == ORIGINAL_PAGE
