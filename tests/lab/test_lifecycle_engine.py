"""The lifecycle engine against a real state DB (SQLite and PostgreSQL), on a virtual clock."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError

from daemon.domain.clock import VirtualClock
from daemon.policy import commands
from daemon.store.migrate import current_revision, head_revision
from daemon.store.models import Account, Correspondence, Event, ScheduledAction
from tests.lab.engine_helpers import account, make_app, run_days, write_billing

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def _events(app, account_id: str) -> list[tuple[int, str, str]]:  # type: ignore[no-untyped-def]
    with app.sessions() as session:
        rows = session.scalars(
            select(Event).where(Event.account_id == account_id).order_by(Event.id)
        ).all()
        return [(round((e.at - T0) / DAY), e.from_state, e.details["label"]) for e in rows]


def test_migrations_reach_head_and_events_are_append_only(tmp_path: Path, state_url: str) -> None:
    clock = VirtualClock(T0)
    write_billing(tmp_path / "billing.json", [account("acme", T0 - 4 * DAY)])
    app = make_app(tmp_path, state_url, clock)
    assert current_revision(app.engine) == head_revision()
    app.lifecycle.sync()
    with pytest.raises(DBAPIError, match="append-only"), app.engine.begin() as connection:
        connection.execute(update(Event).values(reason="rewritten"))
    with pytest.raises(DBAPIError, match="append-only"), app.engine.begin() as connection:
        connection.execute(text("DELETE FROM events"))
    assert len(_events(app, "acme")) == 2


def test_whole_default_lifecycle_is_recorded_on_a_virtual_clock(
    tmp_path: Path, state_url: str
) -> None:
    clock = VirtualClock(T0)
    write_billing(tmp_path / "billing.json", [account("acme", T0), account("paid", None)])
    app = make_app(tmp_path, state_url, clock)
    app.lifecycle.sync()
    run_days(app, clock, 70)
    assert _events(app, "acme") == [
        (0, "active", "overdue"),
        (3, "overdue", "reminded(1)"),
        (10, "reminded", "reminded(2)"),
        (17, "reminded", "reminded(3)"),
        (28, "reminded", "final-notice"),
        (35, "final-notice", "suspended"),
        (51, "suspended", "removal-warned(1)"),
        # Day 62 is a Sunday: the last warning goes out on the Friday before, so the
        # deletion stays on day 65, the instant the final notice named.
        (60, "removal-warned", "removal-warned(2)"),
        (65, "removal-warned", "deleted"),
    ]
    assert _events(app, "paid") == []
    with app.sessions() as session:
        letters = session.scalars(select(Correspondence).order_by(Correspondence.id)).all()
        actions = session.scalars(select(ScheduledAction).order_by(ScheduledAction.id)).all()
    assert [(c.notice, c.number, c.status) for c in letters] == [
        ("reminder", 1, "sent"),
        ("reminder", 2, "sent"),
        ("reminder", 3, "sent"),
        ("final", 0, "sent"),
        # No suspension or deletion notice: no phase ran here (they follow the phases).
        ("removal-warning", 1, "sent"),
        ("removal-warning", 2, "sent"),
    ]
    assert {c.recipient for c in letters} == {"acme@example.org"}
    outbox = sorted((tmp_path / "outbox").iterdir())
    sent_ids = [_message_id(path) for path in outbox]
    assert sorted(sent_ids) == sorted(c.message_id for c in letters)
    assert [(a.name, a.status) for a in actions] == [("suspend", "pending"), ("delete", "pending")]


def _message_id(path: Path) -> str:
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    return str(message["Message-ID"])


def test_a_second_sync_at_the_same_time_repeats_nothing(tmp_path: Path, state_url: str) -> None:
    clock = VirtualClock(T0)
    write_billing(tmp_path / "billing.json", [account("acme", T0 - 12 * DAY)])
    app = make_app(tmp_path, state_url, clock)
    first = app.lifecycle.sync()
    second = app.lifecycle.sync()
    assert dict(first.transitions) == {"overdue": 1, "reminded": 1}
    assert dict(second.transitions) == {}
    # Numbered by what was sent: the first reminder this client gets is number 1.
    assert _events(app, "acme") == [(0, "active", "overdue"), (0, "overdue", "reminded(1)")]


def test_notice_left_pending_by_a_crash_is_delivered_once(tmp_path: Path, state_url: str) -> None:
    """A crash after the transition committed but before delivery: the next start
    delivers the notice, and delivering again writes nothing new."""
    clock = VirtualClock(T0)
    write_billing(tmp_path / "billing.json", [account("acme", T0 - 4 * DAY)])
    app = make_app(tmp_path, state_url, clock)
    app.notices.deliver_pending = lambda: 0  # type: ignore[method-assign]  # the "crash"
    app.lifecycle.sync()
    with app.sessions() as session:
        assert session.scalars(select(Correspondence.status)).all() == ["pending"]
    restarted = make_app(tmp_path, state_url, clock)
    assert restarted.notices.deliver_pending() == 1
    assert restarted.notices.deliver_pending() == 0
    assert len(list((tmp_path / "outbox").iterdir())) == 1


def test_payment_before_suspension_cancels_it(tmp_path: Path, state_url: str) -> None:
    clock = VirtualClock(T0)
    billing = tmp_path / "billing.json"
    write_billing(billing, [account("acme", T0)])
    app = make_app(tmp_path, state_url, clock)
    app.lifecycle.sync()
    run_days(app, clock, 34)
    write_billing(billing, [account("acme", None)])
    app.lifecycle.sync()
    run_days(app, clock, 40)
    assert _events(app, "acme")[-2:] == [
        (28, "reminded", "final-notice"),
        (34, "final-notice", "active"),
    ]
    with app.sessions() as session:
        assert session.scalars(select(ScheduledAction)).all() == []
        row = session.get(Account, "acme")
        assert row is not None and row.next_wake_at is None


def test_paid_before_the_suspend_playbook_ran_cancels_both(tmp_path: Path, state_url: str) -> None:
    clock = VirtualClock(T0)
    billing = tmp_path / "billing.json"
    write_billing(billing, [account("acme", T0)])
    app = make_app(tmp_path, state_url, clock)
    app.lifecycle.sync()
    run_days(app, clock, 36)
    write_billing(billing, [account("acme", None)])
    app.lifecycle.sync()
    with app.sessions() as session:
        actions = session.scalars(select(ScheduledAction)).all()
    assert [(a.name, a.status) for a in actions] == [("suspend", "cancelled")]


def test_hold_and_release_through_the_engine(tmp_path: Path, state_url: str) -> None:
    clock = VirtualClock(T0)
    write_billing(tmp_path / "billing.json", [account("acme", T0 - 4 * DAY)])
    app = make_app(tmp_path, state_url, clock, anytime=True)
    app.lifecycle.sync()
    app.lifecycle.apply_command("acme", commands.hold, "ops:alice", reason="dispute")
    run_days(app, clock, 20)
    app.lifecycle.apply_command("acme", commands.release, "ops:alice")
    run_days(app, clock, 7)
    with app.sessions() as session:
        actors = session.scalars(select(Event.actor).order_by(Event.id)).all()
    assert _events(app, "acme") == [
        (0, "active", "overdue"),
        (0, "overdue", "reminded(1)"),
        (0, "reminded", "on-hold"),
        (20, "on-hold", "reminded(1)"),
        (26, "reminded", "reminded(2)"),
    ]
    assert actors == ["billing-sync", "billing-sync", "ops:alice", "ops:alice", "wake-up"]
