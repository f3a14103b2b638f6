"""Approval gates: a phase the plan names in `approve` waits for a person, on SQLite and
PostgreSQL. Approved, it still passes the deletion proof when it runs; rejected, the
account is on hold; waiting too long, ops are alerted; the client hears nothing of a
deletion that waits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select, update
from structlog.testing import capture_logs

from daemon.domain.clock import VirtualClock
from daemon.domain.states import ActionStatus, ApprovalStatus
from daemon.lifecycle.approvals import NothingToDecideError
from daemon.runtime.app import App
from daemon.store.models import Account, Approval, Backup, ScheduledAction
from tests.lab.approval_scene import DAY, T0, approval_app, client_notices, to_deletion
from tests.lab.engine_helpers import run_days

SITE = ("www", "site", "index.html")


def _state(app: App) -> str:
    with app.sessions() as session:
        state = session.scalar(select(Account.state))
    assert isinstance(state, str)
    return state


def _delete_status(app: App) -> ActionStatus:
    with app.sessions() as session:
        status = session.scalar(
            select(ScheduledAction.status).where(ScheduledAction.name == "delete")
        )
    assert isinstance(status, ActionStatus)
    return status


def test_a_deletion_waits_for_approval_then_runs(tmp_path: Path, state_url: str) -> None:
    clock = VirtualClock(T0)
    app = approval_app(tmp_path, state_url, clock, approve=["delete"])
    to_deletion(app, clock)
    assert app.runner.run_pending() == 1  # picked, and left waiting
    app.runner.run_pending()
    assert _delete_status(app) == ActionStatus.PENDING
    assert tmp_path.joinpath(*SITE).exists()
    (waiting,) = app.approvals.waiting()
    assert (waiting.account_id, waiting.phase) == ("acct-1", "delete")
    assert "deletion" not in client_notices(tmp_path)  # the client is told nothing yet

    assert app.approvals.approve("acct-1", "console:alice") == "delete"
    app.runner.run_pending()
    assert _delete_status(app) == ActionStatus.DONE
    assert not tmp_path.joinpath(*SITE).exists()
    assert client_notices(tmp_path)[-1] == "deletion"
    assert app.approvals.waiting() == []
    summaries = [entry.summary for entry in app.readers.audit.of("acct-1").entries]
    assert "delete waiting" in summaries
    assert "delete approved by console:alice" in summaries
    assert app.readers.audit.check().problems == []


def test_an_approved_deletion_still_needs_its_proof(tmp_path: Path, state_url: str) -> None:
    """Approval only lets the phase be picked: a backup that no longer counts refuses it."""
    clock = VirtualClock(T0)
    app = approval_app(tmp_path, state_url, clock, approve=["delete"])
    to_deletion(app, clock)
    app.runner.run_pending()
    app.approvals.approve("acct-1", "ops:bob")
    with app.sessions() as session:
        session.execute(update(Backup).values(status="failed"))
        session.commit()
    app.runner.run_pending()
    assert _delete_status(app) == ActionStatus.FAILED
    assert _state(app) == "delete-failed"
    assert tmp_path.joinpath(*SITE).exists()
    assert "deletion" not in client_notices(tmp_path)


def test_a_rejected_deletion_puts_the_account_on_hold(tmp_path: Path, state_url: str) -> None:
    clock = VirtualClock(T0)
    app = approval_app(tmp_path, state_url, clock, approve=["delete"])
    to_deletion(app, clock)
    app.runner.run_pending()
    assert app.approvals.reject("acct-1", "ops:carol", "client called, paying Monday") == "delete"
    assert _delete_status(app) == ActionStatus.CANCELLED
    view = app.readers.accounts.view("acct-1")
    assert view.record.state == "on-hold"
    assert view.record.resume_state == "removal-warned"
    assert view.record.hold_reason == "delete rejected: client called, paying Monday"
    app.runner.run_pending()
    assert tmp_path.joinpath(*SITE).exists()
    assert "deletion" not in client_notices(tmp_path)
    (decision,) = app.approvals.of("acct-1")
    assert (decision.status, decision.decided_by) == (ApprovalStatus.REJECTED, "ops:carol")
    with pytest.raises(NothingToDecideError):
        app.approvals.approve("acct-1", "ops:carol")


def test_a_waiting_approval_alerts_ops_once(tmp_path: Path, state_url: str) -> None:
    clock = VirtualClock(T0)
    app = approval_app(tmp_path, state_url, clock, approve=["delete"], approval_alert_after="2d")
    to_deletion(app, clock)
    app.runner.run_pending()
    clock.set(clock.now + DAY)
    assert app.approvals.alert_overdue() == []
    clock.set(clock.now + DAY + DAY / 2)
    with capture_logs() as logs:
        assert app.approvals.alert_overdue() == ["acct-1"]
        assert app.approvals.alert_overdue() == []
    alerts = [line for line in logs if line["event"] == "ops alert"]
    assert [(line["alert"], line["account"]) for line in alerts] == [("approval-waiting", "acct-1")]


@pytest.mark.parametrize(("threshold", "waits"), [("100", True), ("500", False)])
def test_a_suspension_waits_only_above_its_threshold(
    tmp_path: Path, state_url: str, threshold: str, waits: bool
) -> None:
    clock = VirtualClock(T0)
    app = approval_app(
        tmp_path,
        state_url,
        clock,
        approve=["suspend"],
        approve_suspend_over={"EUR": threshold},
    )
    app.lifecycle.sync()
    run_days(app, clock, 12)
    assert _state(app) == "suspended"
    app.runner.run_pending()
    waiting = [item.phase for item in app.approvals.waiting()]
    assert waiting == (["suspend"] if waits else [])
    assert ("suspension" in client_notices(tmp_path)) is not waits


def _paid_while_waiting(tmp_path: Path, state_url: str) -> App:
    """acct-1's deletion waiting for approval, then paid in billing (not synced yet)."""
    clock = VirtualClock(T0)
    app = approval_app(tmp_path, state_url, clock, approve=["delete"])
    to_deletion(app, clock)
    app.runner.run_pending()
    billing = json.loads((tmp_path / "billing.json").read_text())
    billing["accounts"][0] |= {"balance": "0", "invoices": []}
    (tmp_path / "billing.json").write_text(json.dumps(billing))
    return app


def test_a_payment_while_the_deletion_waits_reactivates_the_account(
    tmp_path: Path, state_url: str
) -> None:
    """Paying at any point before deletion reactivates the account: a payment while the
    deletion waits for approval withdraws it (no step of it had started), closes the
    approval as decided by billing, and the account comes back as paid, the site
    unsuspended; approving afterwards finds nothing to decide."""
    app = _paid_while_waiting(tmp_path, state_url)
    app.lifecycle.sync()
    assert _state(app) == "active"
    assert _delete_status(app) == ActionStatus.CANCELLED
    assert app.approvals.waiting() == []
    with app.sessions() as session:
        decided = session.scalars(select(Approval)).one()
    assert (decided.status, decided.decided_by) == (ApprovalStatus.REJECTED, "billing")
    with pytest.raises(NothingToDecideError):
        app.approvals.approve("acct-1", "ops:carol")
    app.runner.run_pending()  # the unsuspend phase
    assert tmp_path.joinpath(*SITE).read_text() == "<h1>Shop</h1>\n"
    assert "deletion" not in client_notices(tmp_path)
    assert app.readers.audit.check().problems == []


def test_a_paid_account_whose_deletion_is_rejected_comes_back(
    tmp_path: Path, state_url: str
) -> None:
    """Rejected before the daemon saw the payment: the account is on hold, and the next
    look at billing reactivates it as paid."""
    app = _paid_while_waiting(tmp_path, state_url)
    app.approvals.reject("acct-1", "ops:carol", "paid by bank transfer")
    assert _state(app) == "on-hold"
    app.lifecycle.sync()
    assert _state(app) == "active"
    app.runner.run_pending()  # the unsuspend phase
    assert tmp_path.joinpath(*SITE).read_text() == "<h1>Shop</h1>\n"
    assert "deletion" not in client_notices(tmp_path)


def test_an_approved_deletion_of_an_account_paid_meanwhile_touches_nothing(
    tmp_path: Path, state_url: str
) -> None:
    """Approved before billing reported the payment: the payment check before the first
    step reads billing afresh, finds it, the site stays, and the account comes back."""
    app = _paid_while_waiting(tmp_path, state_url)
    app.approvals.approve("acct-1", "ops:bob")
    app.runner.run_pending()
    assert _delete_status(app) == ActionStatus.CANCELLED
    # The payment check stopped it before its first step, the site and data kept, and
    # the account, evaluated at once, is reactivated as paid.
    assert tmp_path.joinpath(*SITE).exists()
    assert _state(app) == "active"
    app.runner.run_pending()  # the unsuspend phase
    assert tmp_path.joinpath(*SITE).read_text() == "<h1>Shop</h1>\n"
    assert "deletion" not in client_notices(tmp_path)
