"""A payment wins at any moment (invariant 2), on the real lab hosts.

The daemon's own scheduler and HTTP listener run in real time; the account's suspend
phase runs inside its wake-up job, and a signed payment webhook arrives through the
real listener at a chosen moment: before each step of the nginx-linux and
apache-linux suspend phases, after the last one (the job still running), or in the
middle of a backup that cannot finish. Every case must end with the site answering
200 with its own content through the real nginx or Apache, the logins back, the
account active and at most one reactivation notice, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update
from structlog.testing import capture_logs

from daemon.config.schema import WebhooksConfig
from daemon.config.secrets import SecretRef
from daemon.playbooks.library import load_playbook
from daemon.runtime.http.server import LapseHTTP
from daemon.runtime.http.signatures import sign_hmac
from daemon.runtime.scheduler import LapseScheduler
from daemon.runtime.service import http_listener
from daemon.store.models import (
    Account,
    Backup,
    Correspondence,
    PlaybookRun,
    ScheduledAction,
    StepRecord,
    WebhookEvent,
)
from daemon.store.payment_events import record_payment
from tests.lab.engine_helpers import run_days
from tests.lab.playbook_scene import ORIGINAL_PAGE, PortalCalls, Scene, build_scene, serve_portal
from tests.lab.services.apache import ApacheServer, start_apache
from tests.lab.services.mariadb import MariaDBServer
from tests.lab.services.nginx import NginxServer
from tests.lab.services.postgres import PostgresServer
from tests.lab.services.sshd import SSHServer

SECRET = "whsec_payment_wins"
PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
KINDS = ("nginx-linux", "apache-linux")
# Every moment a payment can land in a suspend phase: before each step, and after the
# last one while the job that ran the phase is still going. Each on one state database,
# taken in turn (the other playbook takes the other at the same boundary), so every
# boundary of each playbook is tried and both databases see every boundary.
BOUNDARIES = [
    (kind, boundary, ("sqlite", "postgresql")[(boundary + index) % 2])
    for index, kind in enumerate(KINDS)
    for boundary in range(len(load_playbook(PLAYBOOKS / f"{kind}.toml").steps("suspend")) + 1)
]


@dataclass
class Live:
    """A scene run by the daemon's real-time scheduler and HTTP listener."""

    scene: Scene
    kind: str
    url: str  # the site's base URL on the web server that serves it
    scheduler: LapseScheduler
    listener: LapseHTTP

    def get(self, path: str = "/") -> httpx.Response:
        """Fetch `path` of the site through its real web server."""
        return httpx.get(
            self.url + path.lstrip("/"), headers={"Host": self.scene.domain}, timeout=10
        )

    def pay(self, event_id: str) -> httpx.Response:
        """The client pays: billing shows nothing owed, and a signed payment event is
        posted to the listener. Returns the listener's answer."""
        self.scene.pay()
        body = json.dumps(
            {
                "id": event_id,
                "account_id": self.scene.account_id,
                "at": datetime.now(UTC).isoformat(),
            }
        ).encode()
        return httpx.post(
            f"http://127.0.0.1:{self.listener.port}/webhooks/generic",
            content=body,
            headers={"X-Lapse-Signature": sign_hmac(body, SECRET)},
            timeout=10,
        )


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    """The shipped playbook under test."""
    return str(request.param)


@pytest.fixture
def live_factory(
    lab_tmp: Path,
    state_url: str,
    sshd: SSHServer,
    nginx: NginxServer,
    mariadb: MariaDBServer,
    postgres: PostgresServer,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[[str], Live]]:
    """Build the live scene for a playbook kind, once per test; the account is suspended
    by the lifecycle with its suspend phase queued, not yet run."""
    monkeypatch.setenv("LAPSE_PORTAL_TOKEN", "portal-token-payment")
    stack: list[Callable[[], object]] = []

    def make(playbook: str) -> Live:
        # Under the lab directory, not pytest's (mode 700): Apache's workers run as
        # www-data and must reach the docroot and the maintenance page.
        base = lab_tmp / f"pay-{secrets.token_hex(4)}"
        base.mkdir(mode=0o755)
        portal = serve_portal()
        served: tuple[str, PortalCalls] = portal.__enter__()
        stack.append(lambda: portal.__exit__(None, None, None))
        built = build_scene(base, sshd, nginx, mariadb, postgres, served, state_url=state_url)
        scene = built.__enter__()
        stack.append(lambda: built.__exit__(None, None, None))
        url = nginx.url("/")
        if playbook == "apache-linux":
            apache = start_apache(base / "apache")
            stack.append(apache.stop)
            url = apache.url("/")
            _serve_with_apache(scene, apache)
        return _go_live(scene, playbook, url, base, stack)

    yield make
    for undo in reversed(stack):
        undo()


def _serve_with_apache(scene: Scene, apache: ApacheServer) -> None:
    """Move the scene's site from nginx to Apache and point its host at apache-linux."""
    (apache.sites_dir / f"{scene.domain}.conf").write_text(
        f"<VirtualHost 127.0.0.1:{apache.port}>\n    ServerName {scene.domain}\n"
        f"    DocumentRoot {scene.docroot}\n    <Directory {scene.docroot}>\n"
        "        Require all granted\n    </Directory>\n</VirtualHost>\n"
    )
    subprocess.run(apache.command("-k", "graceful"), shell=True, check=True)  # noqa: S602
    _await_site(apache.url("/"), scene.domain)
    scene.vhost.unlink()
    scene.nginx.reload()
    config = scene.app.config
    host = config.hosts["web1"]
    apache_vars = host.vars | {
        "sites_dir": str(apache.sites_dir),
        "sites_available": str(apache.sites_dir),
        "apache_test": apache.command("-t"),
        "apache_reload": apache.command("-k", "graceful"),
        "check_base": apache.url("").rstrip("/"),
        "listen": f"127.0.0.1:{apache.port}",
    }
    for name in ("nginx_test", "nginx_reload"):
        apache_vars.pop(name, None)
    moved = host.model_copy(update={"playbook": "apache-linux", "vars": apache_vars})
    config.hosts["web1"] = moved
    scene.vhost = apache.sites_dir / f"{scene.domain}.conf"


def _await_site(url: str, domain: str) -> None:
    """Poll `url` as `domain` until it serves the original page: `apache2 -k graceful`
    returns before the restarted workers answer with the new vhost. Raises AssertionError
    after 10 s."""
    deadline = time.monotonic() + 10
    while True:
        try:
            answer = httpx.get(url, headers={"Host": domain}, timeout=5)
            if answer.text == ORIGINAL_PAGE:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"Apache never served {domain} after its reload"
        time.sleep(0.1)


def _go_live(
    scene: Scene, playbook: str, url: str, base: Path, stack: list[Callable[[], object]]
) -> Live:
    """Time-travel the account to its suspension, then hand it to a real-time scheduler
    whose first job is the account's wake-up (which runs the queued suspend phase)."""
    secret_file = base / "hmac-secret"
    secret_file.write_text(SECRET)
    hooks = WebhooksConfig(hmac_secret=SecretRef(file=secret_file))
    object.__setattr__(scene.app.config, "webhooks", hooks)
    run_days(scene.app, scene.clock, 40)
    assert _state(scene) == "suspended"
    assert _actions(scene) == {"suspend": "pending"}
    scene.clock.set(datetime.now(UTC))
    with scene.app.sessions.begin() as session:
        session.execute(
            update(Account)
            .where(Account.id == scene.account_id)
            .values(next_wake_at=scene.clock() + timedelta(seconds=2))
        )
    scheduler = LapseScheduler(
        scene.app.engine, scene.app.lifecycle, timedelta(hours=1), scene.app.runner
    )
    listener = http_listener(scene.app, scheduler, "127.0.0.1:0")
    live = Live(scene, playbook, url, scheduler, listener)
    assert live.get().text == ORIGINAL_PAGE
    listener.start()
    stack.append(listener.stop)
    stack.append(lambda: scheduler.shutdown() if scheduler.scheduler.running else None)
    return live


def _start(live: Live) -> None:
    live.scheduler.start(sync_now=False)


def _state(scene: Scene) -> str:
    with scene.app.sessions() as session:
        row = session.get(Account, scene.account_id)
        assert row is not None
        return row.state


def _actions(scene: Scene) -> dict[str, str]:
    with scene.app.sessions() as session:
        rows = session.execute(
            select(ScheduledAction.name, ScheduledAction.status)
            .where(ScheduledAction.kind == "playbook")
            .order_by(ScheduledAction.id)
        ).all()
    return {name: status for name, status in rows}


def _suspend_steps(scene: Scene) -> list[str]:
    with scene.app.sessions() as session:
        rows = session.scalars(
            select(StepRecord.status)
            .join(PlaybookRun, StepRecord.run_id == PlaybookRun.id)
            .where(PlaybookRun.phase == "suspend")
            .order_by(StepRecord.position)
        ).all()
    return list(rows)


def _wait_until_settled(live: Live, seconds: float) -> None:
    """Wait until the account is active with no phase pending or running."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        actions = _actions(live.scene)
        busy = {"pending", "running"} & set(actions.values())
        if _state(live.scene) == "active" and not busy and "unsuspend" in actions:
            return
        time.sleep(0.3)
    raise AssertionError(
        f"not reactivated within {seconds} s: state {_state(live.scene)}, "
        f"actions {_actions(live.scene)}, suspend steps {_suspend_steps(live.scene)}"
    )


def _assert_back(live: Live) -> None:
    """The site serves its own content, the logins work, the account is active, the
    payment is marked handled, and the client got at most one reactivation notice."""
    scene = live.scene
    page = live.get()
    assert (page.status_code, page.text) == (200, ORIGINAL_PAGE)
    assert live.get("/any/deep/path.html").status_code == 404  # not the maintenance answer
    assert not scene.locked()
    home = scene.docroot.parent.parent / "home" / scene.user
    assert (home / ".ssh" / "authorized_keys").exists()
    assert not (home / ".ssh" / "authorized_keys.lapse-disabled").exists()
    shell = subprocess.run(
        ["getent", "passwd", scene.user], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert shell.endswith(":/bin/bash")
    cron = subprocess.run(
        ["crontab", "-l", "-u", scene.user], capture_output=True, text=True, check=True
    )
    assert "*/5 * * * * true" in cron.stdout
    assert scene.maria_login_works()
    assert scene.pg_login_allowed()
    if scene.portal.calls:  # the portal login was disabled, so it must be enabled again
        assert scene.portal.calls[-1][2] == {"enabled": True, "reason": "reactivated by Lapse"}
    assert _state(scene) == "active"
    with scene.app.sessions() as session:
        assert (
            session.scalar(
                select(func.count())
                .select_from(WebhookEvent)
                .where(WebhookEvent.handled_at.is_(None))
            )
            == 0
        )
        notices = session.scalar(
            select(func.count())
            .select_from(Correspondence)
            .where(Correspondence.notice == "reactivation")
        )
    assert notices is not None and notices <= 1


@pytest.mark.parametrize(("playbook", "boundary", "state_url"), BOUNDARIES, indirect=["state_url"])
def test_a_payment_at_a_step_boundary_of_the_suspend_phase_wins(
    live_factory: Callable[[str], Live], playbook: str, boundary: int
) -> None:
    """The webhook arrives before step `boundary` (or after the last step, while the
    wake-up job that ran the phase still runs): the phase stops there, what it did is
    undone, and the site is back."""
    live = live_factory(playbook)
    runner = live.scene.app.runner
    guard = runner.payments
    lifecycle = live.scene.app.lifecycle
    real_settle, real_done = guard.settle, lifecycle.phase_done
    answers: list[int] = []
    boundaries_seen = 0

    def pay_once() -> None:
        answers.append(live.pay(f"evt-{boundary}").status_code)

    def settle(account_id: str) -> bool:
        nonlocal boundaries_seen
        if boundaries_seen == boundary and not answers:
            pay_once()
        boundaries_seen += 1
        return real_settle(account_id)

    def phase_done(action_id: int) -> None:
        real_done(action_id)
        if boundaries_seen == boundary and not answers:
            pay_once()  # the phase is done; the job that ran it is not

    guard.settle = settle  # type: ignore[method-assign]
    lifecycle.phase_done = phase_done  # type: ignore[method-assign]
    _start(live)

    _wait_until_settled(live, 120)

    assert answers == [202]
    _assert_back(live)
    statuses = _suspend_steps(live.scene)
    # The steps before the payment ran (and were undone if they changed anything);
    # none after it did.
    assert all(status in ("done", "undone", "skipped") for status in statuses[:boundary])
    assert all(status == "pending" for status in statuses[boundary:])
    expected = "done" if boundary == len(statuses) else "cancelled"
    assert _actions(live.scene) == {"suspend": expected, "unsuspend": "done"}


def test_a_payment_inside_a_long_backup_stops_the_phase_within_seconds(
    live_factory: Callable[[str], Live], kind: str
) -> None:
    """The backup cannot finish (a client's transaction holds a table lock, so pg_dump
    waits); a payment arrives meanwhile. The phase stops within 10 s, the backup is
    removed, nothing on the host was touched and the account is active."""
    live = live_factory(kind)
    scene = live.scene
    with scene.postgres.connect(scene.pg_db) as blocker, capture_logs() as logs:
        blocker.execute("BEGIN")
        blocker.execute("LOCK TABLE posts IN ACCESS EXCLUSIVE MODE")
        _start(live)
        # Inside the stream: the files and the MariaDB dump are stored, pg_dump waits.
        _wait_for(lambda: _pg_dump_waits(scene), 60, "pg_dump to wait for the lock")
        time.sleep(1)
        assert _suspend_steps(scene)[0] == "running"
        assert _backup_status(scene) == "running"

        paid_at = time.monotonic()
        assert live.pay("evt-long").status_code == 202
        _wait_for(lambda: _actions(scene).get("suspend") == "cancelled", 30, "the stop")
        stopped_after = time.monotonic() - paid_at
        blocker.execute("ROLLBACK")

    assert stopped_after < 10, f"the phase stopped {stopped_after:.1f} s after the payment"
    _wait_until_settled(live, 60)
    _assert_back(live)
    assert _suspend_steps(scene)[0] == "pending"  # stopped inside, never finished
    with scene.app.sessions() as session:
        backup = session.scalars(select(Backup)).one()
    assert backup.status == "failed"
    # Stopped inside the stream, not between two objects.
    assert f"stopped during the dump of postgresql database {scene.pg_db}" in (backup.error or "")
    assert "payment event generic:evt-long recorded" in (backup.error or "")
    stored = scene.docroot.parents[1] / "backups" / scene.account_id / backup.id
    assert not stored.exists() or not any(stored.iterdir())
    alerts = [entry["alert"] for entry in logs if entry["event"] == "ops alert"]
    assert "backup-failed" not in alerts and "suspend-failed" not in alerts


def _pg_dump_waits(scene: Scene) -> bool:
    """Whether a session (pg_dump's) waits for a lock on the scene's posts table."""
    with scene.postgres.connect(scene.pg_db) as connection:
        row = connection.execute(
            "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'posts'::regclass"
        ).fetchone()
    return bool(row and row[0])


def _backup_status(scene: Scene) -> str | None:
    with scene.app.sessions() as session:
        return session.scalar(select(Backup.status).order_by(Backup.created_at.desc()))


def _wait_for(condition: Callable[[], Any], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        time.sleep(0.2)


def test_a_payment_event_billing_does_not_confirm_does_not_stop_the_suspension(
    live_factory: Callable[[str], Live],
) -> None:
    """The event says "look now", billing stays the truth: an event for an account that
    still owes is looked at (and marked handled), and the suspension goes on."""
    live = live_factory("nginx-linux")
    scene = live.scene
    real_settle = scene.app.runner.payments.settle
    answers: list[int] = []

    def settle(account_id: str) -> bool:
        if not answers and _suspend_steps(scene)[:2] == ["done", "done"]:
            # Signed and valid, but the money has not arrived: billing still shows it owed.
            body = json.dumps({"id": "evt-early", "account_id": scene.account_id}).encode()
            answers.append(
                httpx.post(
                    f"http://127.0.0.1:{live.listener.port}/webhooks/generic",
                    content=body,
                    headers={"X-Lapse-Signature": sign_hmac(body, SECRET)},
                    timeout=10,
                ).status_code
            )
        return real_settle(account_id)

    scene.app.runner.payments.settle = settle  # type: ignore[method-assign]
    _start(live)

    _wait_for(lambda: _actions(scene).get("suspend") == "done", 120, "the suspension")
    assert answers == [202]
    assert _suspend_steps(scene) == ["done"] * 7
    assert live.get().status_code == 503 and scene.locked()
    assert _state(scene) in ("suspended", "removal-warned")
    with scene.app.sessions() as session:
        event = session.get(WebhookEvent, "generic:evt-early")
        assert event is not None and event.handled_at is not None


def test_a_payment_recorded_before_a_crash_is_acted_on_at_start(
    live_factory: Callable[[str], Live],
) -> None:
    """The listener committed the event and answered 202, then the daemon died before
    acting on it: the next start reactivates the account without waiting for a sync."""
    live = live_factory("nginx-linux")
    scene = live.scene
    scene.app.runner.run_pending()  # the suspension ran before the crash
    assert live.get().status_code == 503
    scene.pay()
    with scene.app.sessions.begin() as session:
        record_payment(
            session, "generic:evt-crash", scene.account_id, "generic", scene.clock(), known=True
        )
        # No deadline of its own is near: only the payment can wake the account.
        session.execute(
            update(Account)
            .where(Account.id == scene.account_id)
            .values(next_wake_at=scene.clock() + timedelta(days=3))
        )

    _start(live)  # the restarted daemon

    _wait_until_settled(live, 60)
    _assert_back(live)
