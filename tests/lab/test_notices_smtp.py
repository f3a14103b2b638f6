"""Client notices through the lab's real SMTP server: content, retries, refusals, crashes."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from daemon.config.load import validate_config
from daemon.domain.clock import VirtualClock
from daemon.notices.delivery.base import Delivery
from daemon.runtime.app import App, build_app
from daemon.store.models import Account, Correspondence, Event
from tests.lab.engine_helpers import run_days, write_billing
from tests.lab.services.smtp import SMTPServer

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # Monday 10:00 in Tokyo
DAY = timedelta(days=1)


def tokyo_account(account_id: str, due_at: datetime) -> dict[str, Any]:
    """A client in Tokyo owing 11,400 yen on one invoice with three lines."""
    return {
        "account_id": account_id,
        "plan": "default",
        "contact": {
            "name": "Echo Sound",
            "email": f"{account_id}@example.jp",
            "timezone": "Asia/Tokyo",
        },
        "currency": "JPY",
        "invoices": [
            {
                "id": f"INV-{account_id}",
                "due_at": due_at.isoformat(),
                "total": "11400",
                "items": [
                    {"description": "Business hosting, quarterly", "amount": "8400"},
                    {"description": "Backup add-on", "amount": "1200"},
                    {"description": "Domain echo.example", "amount": "1800"},
                ],
            }
        ],
    }


class _Hook(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        server: Any = self.server
        length = int(self.headers["Content-Length"])
        server.alerts.append(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def ops_webhook() -> Iterator[Any]:
    """A real HTTP server on loopback recording the JSON alerts posted to it."""
    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    server.alerts = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def smtp_app(
    tmp_path: Path, state_url: str, smtp: SMTPServer, clock: VirtualClock, hook: Any
) -> App:
    """An app delivering notices through the lab SMTP server, alerting ops by mail and hook."""
    raw = {
        "state": {"url": state_url},
        "billing": {"type": "file", "path": str(tmp_path / "billing.json")},
        "backup": {"store": {"type": "local", "path": str(tmp_path / "backups")}},
        "notices": {
            "notifier": {"type": "smtp", "host": smtp.host, "port": smtp.port, "security": "plain"},
            "brand": {"company_name": "Example Hosting", "sender": "Billing <billing@example.com>"},
            "templates_dir": str(tmp_path / "templates"),
        },
        "alerts": {
            "email": ["ops@example.com"],
            "webhook": f"http://127.0.0.1:{hook.server_address[1]}/alerts",
        },
    }
    return build_app(validate_config(raw, source="test", base_dir=tmp_path), clock)


def client_messages(smtp: SMTPServer) -> list[Any]:
    """Messages the lab server accepted for clients (not ops alerts)."""
    return [m.message for m in smtp.messages if "ops@example.com" not in m.rcpt_tos]


def test_every_notice_arrives_with_subject_recipient_amounts_and_local_dates(
    tmp_path: Path, state_url: str, smtp_inbox: SMTPServer, ops_webhook: Any
) -> None:
    clock = VirtualClock(T0)
    write_billing(tmp_path / "billing.json", [tokyo_account("echo", T0)])
    app = smtp_app(tmp_path, state_url, smtp_inbox, clock, ops_webhook)
    app.lifecycle.sync()
    run_days(app, clock, 80)

    messages = client_messages(smtp_inbox)
    assert [m["X-Lapse-Notice"] for m in messages] == [
        "reminder#1",
        "reminder#2",
        "reminder#3",
        "final",
        # The suspension and deletion notices follow their phases, which no runner runs
        # here (tests/lab/test_notices_after_acts.py sends them).
        "removal-warning#1",
        "removal-warning#2",
    ]
    assert {m["To"].addresses[0].addr_spec for m in messages} == {"echo@example.jp"}
    assert all(m["Message-ID"] and m["Date"] for m in messages)
    final = messages[3]
    assert "Final notice" in final["Subject"]
    text = final.get_body(preferencelist=("plain",)).get_content()
    for amount in ("¥8,400", "¥1,200", "¥1,800", "¥11,400"):
        assert amount in text
    with app.sessions() as session:
        suspended_at = session.scalar(select(Account.suspended_at))
    assert suspended_at is not None
    # The final notice names the suspension in the client's zone, to the minute.
    local = suspended_at.astimezone(ZoneInfo("Asia/Tokyo"))
    assert f"{local:%H:%M} JST" in text
    assert f"{local.day} {local:%B %Y}" in text
    assert ops_webhook.alerts == []


def test_a_temporary_failure_is_retried_and_delivered_once(
    tmp_path: Path, state_url: str, smtp_inbox: SMTPServer, ops_webhook: Any
) -> None:
    clock = VirtualClock(T0 + 3 * DAY)
    write_billing(tmp_path / "billing.json", [tokyo_account("echo", T0)])
    app = smtp_app(tmp_path, state_url, smtp_inbox, clock, ops_webhook)
    smtp_inbox.fail_next(451, "try again later")

    app.lifecycle.sync()  # reminder 1 queued, delivery deferred by the 451
    with app.sessions() as session:
        assert session.scalars(select(Correspondence.status)).all() == ["pending"]
    assert client_messages(smtp_inbox) == []

    app.notices.deliver_pending()

    with app.sessions() as session:
        letter = session.scalars(select(Correspondence)).one()
    assert letter.status == "sent"
    assert letter.receipt is not None and letter.receipt.startswith("250")
    assert [m["Message-ID"] for m in client_messages(smtp_inbox)] == [letter.message_id]


def test_a_refused_final_notice_holds_the_account_and_alerts_ops(
    tmp_path: Path, state_url: str, smtp_inbox: SMTPServer, ops_webhook: Any
) -> None:
    clock = VirtualClock(T0 + 28 * DAY)
    write_billing(tmp_path / "billing.json", [tokyo_account("echo", T0)])
    app = smtp_app(tmp_path, state_url, smtp_inbox, clock, ops_webhook)
    app.lifecycle.sync()  # first seen late: a reminder first
    smtp_inbox.fail_next(550, "no such mailbox", stage="rcpt")
    run_days(app, clock, 30)  # the final notice after the gap, refused for good

    with app.sessions() as session:
        account = session.scalars(select(Account)).one()
        letter = session.scalars(
            select(Correspondence).where(Correspondence.notice == "final")
        ).one()
        reasons = session.scalars(select(Event.reason).order_by(Event.id)).all()
    assert letter.notice == "final" and letter.status == "failed"
    assert "550" in (letter.receipt or "")
    assert account.state == "final-notice"  # 30 days on: never suspended without notice
    assert account.suspended_at is None
    assert "suspension withheld" in reasons[-1]
    (alert,) = ops_webhook.alerts
    assert alert["alert"] == "notice-refused" and alert["account"] == "echo"
    assert "550" in alert["detail"]
    ops_mail = [m.message for m in smtp_inbox.messages if "ops@example.com" in m.rcpt_tos]
    assert len(ops_mail) == 1 and "notice-refused" in ops_mail[0]["Subject"]


class _CrashAfterSend(Delivery):
    """Delivers, then dies before the caller can record it: a crash in the worst window."""

    name = "smtp"

    def __init__(self, inner: Delivery) -> None:
        self.inner = inner

    def deliver(self, message: Any) -> str:
        self.inner.deliver(message)
        raise KeyboardInterrupt("power cut after the server accepted the message")


def test_a_crash_between_send_and_record_gives_the_client_one_message(
    tmp_path: Path, state_url: str, smtp_inbox: SMTPServer, ops_webhook: Any
) -> None:
    """SMTP has no two-phase commit: after a crash in that window the notice is sent
    again on restart, with the same Message-ID, so the client's mail system keeps one
    message; the correspondence log records it once, as sent."""
    clock = VirtualClock(T0 + 3 * DAY)
    write_billing(tmp_path / "billing.json", [tokyo_account("echo", T0)])
    app = smtp_app(tmp_path, state_url, smtp_inbox, clock, ops_webhook)
    real = app.notices.delivery
    app.notices.delivery = _CrashAfterSend(real)
    with pytest.raises(KeyboardInterrupt):
        app.lifecycle.sync()
    with app.sessions() as session:
        assert session.scalars(select(Correspondence.status)).all() == ["pending"]

    restarted = smtp_app(tmp_path, state_url, smtp_inbox, clock, ops_webhook)
    assert restarted.notices.deliver_pending() == 1
    assert restarted.notices.deliver_pending() == 0

    with restarted.sessions() as session:
        letters = session.scalars(select(Correspondence)).all()
    assert [(letter.notice, letter.status) for letter in letters] == [("reminder", "sent")]
    received = {m["Message-ID"] for m in client_messages(smtp_inbox)}
    assert received == {letters[0].message_id}


def test_a_notice_that_cannot_be_written_is_recorded_failed_and_the_sync_goes_on(
    tmp_path: Path, state_url: str, smtp_inbox: SMTPServer, ops_webhook: Any
) -> None:
    """An operator's broken final-notice template: the other accounts are still synced,
    the final notice is recorded as not delivered, ops hear of it, nobody is suspended."""
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "final.txt").write_text(
        "{% block subject %}{{ no_such_variable }}{% endblock %}"
    )
    clock = VirtualClock(T0 + 28 * DAY)
    write_billing(
        tmp_path / "billing.json",
        [tokyo_account("echo", T0), tokyo_account("fresh", T0 + 25 * DAY)],
    )
    app = smtp_app(tmp_path, state_url, smtp_inbox, clock, ops_webhook)

    app.lifecycle.sync()
    run_days(app, clock, 20)

    with app.sessions() as session:
        states = dict(session.execute(select(Account.id, Account.state)).all())
        failed = session.scalars(
            select(Correspondence).where(Correspondence.status == "failed")
        ).all()
    assert states["echo"] == "final-notice"
    assert [(letter.account_id, letter.notice) for letter in failed] == [("echo", "final")]
    assert "no_such_variable" in (failed[0].receipt or "")
    assert [alert["account"] for alert in ops_webhook.alerts] == ["echo"]
    assert states["fresh"] == "reminded"  # its reminders went out as usual
    # First seen past its final-notice day, echo got its reminder before the final notice.
    sent = [(m["X-Lapse-Account"], m["X-Lapse-Notice"]) for m in client_messages(smtp_inbox)]
    assert [notice for who, notice in sent if who == "echo"] == ["reminder#1"]


def test_a_final_notice_accepted_late_moves_the_suspension_and_tells_ops(
    tmp_path: Path, state_url: str, smtp_inbox: SMTPServer, ops_webhook: Any
) -> None:
    """The mail server defers the final notice for six hours: the full notice period
    would end after the instant the notice names, so the suspension moves later (never
    earlier than the period allows), the event says why and ops are alerted. A notice
    accepted within the minute keeps its instant (the earlier tests)."""
    clock = VirtualClock(T0 + 28 * DAY)
    write_billing(tmp_path / "billing.json", [tokyo_account("echo", T0)])
    app = smtp_app(tmp_path, state_url, smtp_inbox, clock, ops_webhook)
    app.lifecycle.sync()  # reminder 1 (first seen late)
    clock.advance(3 * DAY)
    smtp_inbox.fail_next(451, "try again later")
    app.lifecycle.wake("echo")  # the final notice, deferred
    with app.sessions() as session:
        named = session.scalar(select(Account.suspend_at))
        assert session.scalar(select(Account.state)) == "final-notice"
    assert named is not None

    clock.advance(timedelta(hours=6))
    app.notices.deliver_pending()

    with app.sessions() as session:
        account = session.scalars(select(Account)).one()
        reasons = session.scalars(select(Event.reason).order_by(Event.id)).all()
    assert account.final_notice_at == clock.now
    assert account.suspend_at is not None and account.suspend_at >= clock.now + 7 * DAY
    assert account.suspend_at > named
    assert "final notice accepted by the mail server only at" in reasons[-1]
    (alert,) = ops_webhook.alerts
    assert alert["alert"] == "final-notice-late" and alert["account"] == "echo"

    run_days(app, clock, 8)
    with app.sessions() as session:
        account = session.scalars(select(Account)).one()
    assert account.state == "suspended" and account.suspended_at == account.suspend_at
