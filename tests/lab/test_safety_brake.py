"""The safety brake: a sync that turns most accounts overdue at once is held, not obeyed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from daemon.domain.clock import VirtualClock
from daemon.store.models import Account, ScheduledAction
from tests.lab.engine_helpers import account, make_app, run_days, write_billing

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def states(app: object) -> dict[str, int]:
    with app.sessions() as session:  # type: ignore[attr-defined]
        return dict(
            session.execute(select(Account.state, func.count()).group_by(Account.state)).all()
        )


def test_a_sync_turning_most_accounts_overdue_trips_the_brake(
    tmp_path: Path, state_url: str
) -> None:
    billing = tmp_path / "billing.json"
    clock = VirtualClock(START)
    # 2 accounts on their way to suspension, 18 paid up.
    late = [account(f"late{i}", START) for i in range(2)]
    paid = [account(f"paid{i:02d}", None) for i in range(18)]
    write_billing(billing, late + paid)
    app = make_app(tmp_path, state_url, clock, anytime=True)
    app.lifecycle.sync()
    run_days(app, clock, 34)  # the late ones reach final notice; suspension is a day away
    assert states(app) == {"active": 18, "final-notice": 2}

    # A billing outage: 12 of 20 accounts (60%) suddenly show an unpaid, overdue invoice.
    clock.advance(timedelta(days=1, hours=12))  # the late ones are now due for suspension
    broken = [account(f"paid{i:02d}", clock.now - timedelta(days=20)) for i in range(12)]
    write_billing(billing, late + broken + paid[12:])
    report = app.lifecycle.sync()

    assert report.braked
    assert states(app) == {"active": 18, "final-notice": 2}  # nothing moved, none suspended
    engaged = app.lifecycle.brake.status()
    assert engaged is not None and "12 of 20 accounts" in engaged["reason"]
    for late_account in ("late0", "late1"):
        assert app.lifecycle.wake(late_account).braked
    with app.sessions() as session:
        assert session.scalar(select(func.count()).select_from(ScheduledAction)) == 0

    # A payment still reactivates while braked.
    write_billing(billing, [*late[:1], account("late1", None), *broken, *paid[12:]])
    app.lifecycle.sync()
    assert states(app) == {"active": 19, "final-notice": 1}

    # Ops checked billing and release the brake: the next sync applies what billing says.
    app.lifecycle.brake.release("ops:alice")
    report = app.lifecycle.sync()
    assert not report.braked
    after = states(app)
    assert after.get("final-notice", 0) == 0 and after["suspended"] == 1
    assert after.get("overdue", 0) + after.get("reminded", 0) == 12


def test_a_first_sync_of_an_existing_customer_base_does_not_trip_it(
    tmp_path: Path, state_url: str
) -> None:
    clock = VirtualClock(START)
    write_billing(
        tmp_path / "billing.json",
        [account(f"acct{i:02d}", START - timedelta(days=20)) for i in range(15)],
    )
    app = make_app(tmp_path, state_url, clock, anytime=True)
    assert not app.lifecycle.sync().braked
    assert app.lifecycle.brake.status() is None
