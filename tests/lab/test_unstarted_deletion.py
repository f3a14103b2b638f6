"""Paying at any point before deletion reactivates the account: a payment that arrives
while the delete phase is queued but has not started a step withdraws it
(daemon.lifecycle.unstarted_deletion), on SQLite and PostgreSQL. A deletion that
started a step, or that a worker claimed first, is never withdrawn."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select, update

from daemon.domain.clock import VirtualClock
from daemon.domain.states import ActionStatus, RunStatus, StepStatus
from daemon.runtime.app import App
from daemon.store.models import Account, PlaybookRun, ScheduledAction, StepRecord
from tests.lab.approval_scene import T0, approval_app, client_notices, to_deletion

SITE = ("www", "site", "index.html")


def _queued_deletion_then_paid(tmp_path: Path, state_url: str) -> App:
    """acct-1 deleted in its record, its delete phase queued and not run; then paid."""
    clock = VirtualClock(T0)
    app = approval_app(tmp_path, state_url, clock)
    to_deletion(app, clock)
    billing = json.loads((tmp_path / "billing.json").read_text())
    billing["accounts"][0] |= {"balance": "0", "invoices": []}
    (tmp_path / "billing.json").write_text(json.dumps(billing))
    return app


def _state(app: App) -> str:
    with app.sessions() as session:
        state = session.scalar(select(Account.state))
    assert isinstance(state, str)
    return state


def _delete_action(app: App) -> tuple[int, ActionStatus]:
    with app.sessions() as session:
        row = session.execute(
            select(ScheduledAction.id, ScheduledAction.status).where(
                ScheduledAction.name == "delete"
            )
        ).one()
    return row.id, row.status


def test_a_payment_before_the_deletion_began_reactivates(tmp_path: Path, state_url: str) -> None:
    app = _queued_deletion_then_paid(tmp_path, state_url)
    assert _state(app) == "deleted"
    app.lifecycle.sync()
    assert _state(app) == "active"
    assert _delete_action(app)[1] == ActionStatus.CANCELLED
    app.runner.run_pending()  # the unsuspend phase; the withdrawn deletion never runs
    assert tmp_path.joinpath(*SITE).read_text() == "<h1>Shop</h1>\n"
    assert "deletion" not in client_notices(tmp_path)
    assert client_notices(tmp_path)[-1] == "reactivation"
    assert app.readers.audit.check().problems == []


def test_a_deletion_that_started_a_step_is_not_withdrawn(tmp_path: Path, state_url: str) -> None:
    app = _queued_deletion_then_paid(tmp_path, state_url)
    action_id, _status = _delete_action(app)
    with app.sessions.begin() as session:
        run = PlaybookRun(
            account_id="acct-1",
            action_id=action_id,
            playbook="demo",
            phase="delete",
            host="local",
            status=RunStatus.FAILED,
            started_at=T0,
        )
        session.add(run)
        session.flush()
        session.add(
            StepRecord(
                run_id=run.id,
                position=0,
                name="remove the docroot",
                type="run",
                status=StepStatus.FAILED,
                started_at=T0,
            )
        )
    app.lifecycle.sync()
    assert _state(app) == "deleted"
    assert _delete_action(app)[1] == ActionStatus.PENDING


def test_a_deletion_a_worker_claimed_first_is_not_withdrawn(tmp_path: Path, state_url: str) -> None:
    app = _queued_deletion_then_paid(tmp_path, state_url)
    action_id, _status = _delete_action(app)
    with app.sessions.begin() as session:
        session.execute(
            update(ScheduledAction)
            .where(ScheduledAction.id == action_id)
            .values(claimed_by="elsewhere:1:1")
        )
    app.lifecycle.sync()
    assert _state(app) == "deleted"  # the worker's own payment check stops it
    assert _delete_action(app)[1] == ActionStatus.PENDING
