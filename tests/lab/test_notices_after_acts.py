"""Notices after acts: the suspension and deletion notices go out once their phase
succeeded, through the lab SMTP server, after a real playbook run (the demo playbook on
this machine, backups in the lab S3). A failed, cancelled or refused phase sends none."""

from __future__ import annotations

import json
import shutil
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from daemon.config.load import validate_config
from daemon.config.schema import ALL_WEEKDAYS
from daemon.domain.clock import VirtualClock
from daemon.runtime.app import App, build_app
from daemon.store.models import Account, Backup, Correspondence, ScheduledAction
from tests.lab.approval_scene import write_shop
from tests.lab.backup_helpers import s3_store
from tests.lab.engine_helpers import run_days
from tests.lab.services.s3 import S3Server
from tests.lab.services.smtp import SMTPServer

# Due 28 days before the first sync: a reminder, the final notice three days later.
T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def after_acts_app(
    tmp_path: Path, state_url: str, smtp: SMTPServer, s3: S3Server, clock: VirtualClock
) -> App:
    """An app whose one account's site is a local directory suspended by the demo
    playbook, backed up to the lab S3, its notices and ops alerts sent by SMTP."""
    write_shop(tmp_path)
    bucket = s3.create_bucket(f"after-acts-{abs(hash(str(tmp_path))) % 10**8}")
    raw = {
        "state": {"url": state_url},
        "billing": {"type": "file", "path": str(tmp_path / "billing.json")},
        "backup": {"store": s3_store(s3.endpoint_url, bucket)},
        "hosts": {
            "here": {
                "transport": "local",
                "playbook": "demo",
                "allowed_roots": [str(tmp_path / "www")],
            }
        },
        "notices": {
            "notifier": {"type": "smtp", "host": smtp.host, "port": smtp.port, "security": "plain"},
            "brand": {"company_name": "Example Hosting", "sender": "Billing <billing@example.com>"},
        },
        "alerts": {"email": ["ops@example.com"]},
        "policy": {"default": {"quiet_hours": "", "contact_days": list(ALL_WEEKDAYS)}},
    }
    return build_app(validate_config(raw, source="test", base_dir=tmp_path), clock)


def client_notices(smtp: SMTPServer) -> list[str]:
    """The X-Lapse-Notice header of every client message the lab server accepted."""
    return [
        str(m.message["X-Lapse-Notice"])
        for m in smtp.messages
        if "ops@example.com" not in m.rcpt_tos
    ]


def ops_subjects(smtp: SMTPServer) -> list[str]:
    return [str(m.message["Subject"]) for m in smtp.messages if "ops@example.com" in m.rcpt_tos]


def body(smtp: SMTPServer, notice: str) -> str:
    (message,) = [m.message for m in smtp.messages if m.message["X-Lapse-Notice"] == notice]
    plain = message.get_body(preferencelist=("plain",))
    assert plain is not None
    return str(plain.get_content())


def to_suspension(app: App, clock: VirtualClock) -> None:
    """Sync (first seen late: a reminder), wake for the final notice after the gap, then
    at the suspension instant it named."""
    app.lifecycle.sync()
    run_days(app, clock, 3)
    with app.sessions() as session:
        row = session.get(Account, "acct-1")
        assert row is not None and row.state == "final-notice" and row.suspend_at is not None
        suspend_at = row.suspend_at
    clock.set(suspend_at)
    app.lifecycle.wake("acct-1")
    with app.sessions() as session:
        row = session.get(Account, "acct-1")
        assert row is not None and row.state == "suspended"
        assert row.suspended_at == suspend_at


@pytest.fixture
def app_clock(
    tmp_path: Path, state_url: str, smtp_inbox: SMTPServer, s3_credentials: S3Server
) -> tuple[App, VirtualClock]:
    clock = VirtualClock(T0)
    return after_acts_app(tmp_path, state_url, smtp_inbox, s3_credentials, clock), clock


def test_the_suspension_notice_follows_the_phase_with_the_backup_it_took(
    app_clock: tuple[App, VirtualClock], smtp_inbox: SMTPServer
) -> None:
    """At the suspension transition nothing is told; the notice arrives once the suspend
    phase (backup, page, its check) succeeded, with a link to that phase's backup."""
    app, clock = app_clock
    to_suspension(app, clock)
    assert client_notices(smtp_inbox) == ["reminder#1", "final"]
    with app.sessions() as session:
        letters = session.scalars(select(Correspondence.notice)).all()
    assert letters == ["reminder", "final"]  # not even queued before the host work

    assert app.runner.run_pending() == 1
    assert client_notices(smtp_inbox) == ["reminder#1", "final", "suspension"]
    backup = app.backups.latest_verified("acct-1")
    assert backup is not None
    text = body(smtp_inbox, "suspension")
    assert f"/acct-1/{backup.id}/files-" in text.replace("%2F", "/")
    assert "now shows a maintenance page" in text

    app.runner.run_pending()  # nothing left to run: nothing sent twice
    assert client_notices(smtp_inbox) == ["reminder#1", "final", "suspension"]


def test_a_suspend_phase_that_fails_on_the_host_tells_ops_not_the_client(
    tmp_path: Path, app_clock: tuple[App, VirtualClock], smtp_inbox: SMTPServer
) -> None:
    """A file where the maintenance page's directory goes makes the phase fail after its
    backup: the account is suspend-failed, only ops hear of it."""
    app, clock = app_clock
    (tmp_path / "www" / "site.lapse-maintenance").write_text("in the way\n")
    to_suspension(app, clock)
    app.runner.run_pending()
    with app.sessions() as session:
        assert session.scalar(select(Account.state)) == "suspend-failed"
    assert client_notices(smtp_inbox) == ["reminder#1", "final"]
    assert any("suspend-failed" in subject for subject in ops_subjects(smtp_inbox))


def test_a_suspension_cancelled_by_a_payment_sends_no_suspension_notice(
    tmp_path: Path, app_clock: tuple[App, VirtualClock], smtp_inbox: SMTPServer
) -> None:
    app, clock = app_clock
    to_suspension(app, clock)
    paid = json.loads((tmp_path / "billing.json").read_text())
    paid["accounts"][0] |= {"invoices": [], "balance": "0"}
    (tmp_path / "billing.json").write_text(json.dumps(paid))
    app.runner.run_pending()
    with app.sessions() as session:
        statuses = session.scalars(select(ScheduledAction.status)).all()
    assert "cancelled" in statuses
    assert "suspension" not in client_notices(smtp_inbox)
    assert (tmp_path / "www" / "site" / "index.html").read_text() == "<h1>Shop</h1>\n"


def test_the_deletion_notice_follows_the_deletion_and_a_refusal_sends_none(
    tmp_path: Path, app_clock: tuple[App, VirtualClock], smtp_inbox: SMTPServer
) -> None:
    """Refused (its backup no longer counts as verified): no deletion notice, ops alerted.
    Once the backup is good again and the phase retried, the notice follows the deletion."""
    app, clock = app_clock
    to_suspension(app, clock)
    app.runner.run_pending()
    run_days(app, clock, 31)
    with app.sessions() as session:
        assert session.scalar(select(Account.state)) == "deleted"
        session.execute(update(Backup).values(status="failed"))
        session.commit()
    app.runner.run_pending()
    with app.sessions() as session:
        assert session.scalar(select(Account.state)) == "delete-failed"
    assert "deletion" not in client_notices(smtp_inbox)
    assert (tmp_path / "www" / "site").exists()
    assert any("delete-failed" in subject for subject in ops_subjects(smtp_inbox))

    with app.sessions() as session:
        session.execute(update(Backup).values(status="verified"))
        session.commit()
    assert app.runner.retry("acct-1", "ops") == "done"
    assert not (tmp_path / "www" / "site").exists()
    assert client_notices(smtp_inbox)[-1] == "deletion"
    assert client_notices(smtp_inbox).count("deletion") == 1


def test_a_crash_after_the_phase_is_recorded_done_loses_and_repeats_no_notice(
    app_clock: tuple[App, VirtualClock], smtp_inbox: SMTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon dies right after the commit that records the phase done (before
    delivering): the notice is in the state database, pending, and goes out once."""
    app, clock = app_clock
    to_suspension(app, clock)

    def crash() -> int:
        raise SystemExit("killed")

    monkeypatch.setattr(app.notices, "deliver_pending", crash)
    with pytest.raises(SystemExit):
        app.runner.run_pending()
    monkeypatch.undo()
    with app.sessions() as session:
        action = session.scalars(select(ScheduledAction)).one()
        letter = session.scalars(
            select(Correspondence).where(Correspondence.notice == "suspension")
        ).one()
        assert (action.status, letter.status) == ("done", "pending")
    assert client_notices(smtp_inbox) == ["reminder#1", "final"]
    app.runner.run_pending()  # what a restart does: the phase is done, nothing re-runs
    app.notices.deliver_pending()
    app.notices.deliver_pending()
    assert client_notices(smtp_inbox) == ["reminder#1", "final", "suspension"]


def test_a_crash_before_the_phase_is_recorded_done_sends_the_notice_once_on_resume(
    app_clock: tuple[App, VirtualClock], smtp_inbox: SMTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon dies inside the transaction that records the phase done: neither the
    'done' nor the notice is written. The next daemon resumes the phase past its finished
    steps (no second backup) and sends the notice once."""
    app, clock = app_clock
    to_suspension(app, clock)

    def crash(*args: object, **kwargs: object) -> None:
        raise SystemExit("killed")

    monkeypatch.setattr(app.notices, "queue", crash)
    with pytest.raises(SystemExit):
        app.runner.run_pending()
    monkeypatch.undo()
    with app.sessions.begin() as session:
        action = session.scalars(select(ScheduledAction)).one()
        assert action.status == "running"
        assert session.scalars(select(Correspondence.notice)).all() == ["reminder", "final"]
        action.claimed_by = f"{socket.gethostname()}:999999999:0"  # its process is gone
    assert client_notices(smtp_inbox) == ["reminder#1", "final"]

    assert app.runner.run_pending() == 1
    assert client_notices(smtp_inbox) == ["reminder#1", "final", "suspension"]
    assert len(app.backups.list("acct-1")) == 1
    app.runner.run_pending()
    assert client_notices(smtp_inbox).count("suspension") == 1


def pay(tmp_path: Path) -> None:
    """Settle the account in billing."""
    paid = json.loads((tmp_path / "billing.json").read_text())
    paid["accounts"][0] |= {"invoices": [], "balance": "0"}
    (tmp_path / "billing.json").write_text(json.dumps(paid))


def test_the_reactivation_notice_follows_the_unsuspend_phase(
    tmp_path: Path, app_clock: tuple[App, VirtualClock], smtp_inbox: SMTPServer
) -> None:
    """Paid while suspended: the notice saying the site is online again is held back at
    the transition and sent once the unsuspend phase put the site back."""
    app, clock = app_clock
    to_suspension(app, clock)
    app.runner.run_pending()
    pay(tmp_path)
    app.lifecycle.wake("acct-1")
    with app.sessions() as session:
        assert session.scalar(select(Account.state)) == "active"
        letters = session.scalars(select(Correspondence.notice)).all()
    assert "reactivation" not in letters  # not even queued before the host work
    assert (tmp_path / "www" / "site" / "index.html").read_text() != "<h1>Shop</h1>\n"

    app.runner.run_pending()
    assert (tmp_path / "www" / "site" / "index.html").read_text() == "<h1>Shop</h1>\n"
    assert client_notices(smtp_inbox) == ["reminder#1", "final", "suspension", "reactivation"]
    app.runner.run_pending()  # nothing left to run: nothing sent twice
    assert client_notices(smtp_inbox).count("reactivation") == 1


def test_an_unsuspend_that_fails_tells_ops_not_the_client(
    tmp_path: Path, app_clock: tuple[App, VirtualClock], smtp_inbox: SMTPServer
) -> None:
    """The site set aside by the suspension is gone, so the unsuspend phase cannot bring
    it back and its check fails: the client is not told the site is online."""
    app, clock = app_clock
    to_suspension(app, clock)
    app.runner.run_pending()
    shutil.rmtree(tmp_path / "www" / "site.lapse-suspended")
    pay(tmp_path)
    app.lifecycle.wake("acct-1")
    app.runner.run_pending()
    with app.sessions() as session:
        rows = session.execute(select(ScheduledAction.name, ScheduledAction.status)).all()
    statuses = {name: status for name, status in rows}
    assert statuses["unsuspend"] == "failed"
    assert "reactivation" not in client_notices(smtp_inbox)
    assert any("unsuspend-failed" in subject for subject in ops_subjects(smtp_inbox))
