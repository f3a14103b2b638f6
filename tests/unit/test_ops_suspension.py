"""`lapse suspend` and `lapse unsuspend` as pure commands on the lifecycle record."""

from __future__ import annotations

import pytest

from daemon.domain.states import State
from daemon.policy import LifecycleRecord, decide
from daemon.policy.commands import CommandRefusedError, reactivate, suspend, unsuspend
from tests.unit.policy_helpers import DAY, T0, Driver, snapshot


def test_an_ops_suspension_of_a_paying_account_runs_the_suspend_phase_and_sticks() -> None:
    driver = Driver()
    driver.run_until(snapshot(balance="0"), T0 + 3 * DAY)
    decision = suspend(driver.record, driver.now, reason="phishing kit found")
    assert decision.record.state is State.OPS_SUSPENDED
    assert [str(a) for a in decision.actions] == ["playbook:suspend"]
    assert decision.reason == "suspended by ops: phishing kit found"
    driver.record = decision.record
    # Paid up, a year later: still suspended, nothing sent, nothing deleted.
    driver.run_until(snapshot(balance="0"), T0 + 400 * DAY)
    assert driver.record.state is State.OPS_SUSPENDED
    assert driver.steps == []
    stay = decide(snapshot(balance="0"), driver.record, driver.policy, driver.now)
    assert stay.reason == "suspended by ops: phishing kit found"


def test_lifting_an_ops_suspension_brings_the_site_back_and_resumes_the_clock() -> None:
    driver = Driver()
    driver.run_until(snapshot(), T0 + 5 * DAY)
    assert driver.record.label == "reminded(1)"
    driver.record = suspend(driver.record, driver.now, reason="abuse report").record
    driver.run_until(snapshot(), T0 + 15 * DAY)
    lifted = unsuspend(driver.record, driver.now, reason="site cleaned")
    assert lifted.record.label == "reminded(1)"
    assert [str(a) for a in lifted.actions] == ["playbook:unsuspend"]
    assert lifted.reason == "ops suspension lifted: site cleaned"
    driver.record = lifted.record
    driver.run_until(snapshot(), T0 + 21 * DAY)
    # The 10 days under the ops suspension moved the next reminder from day 10 to 20.
    assert [(s.day, s.label) for s in driver.steps[-1:]] == [(20, "reminded(2)")]


def test_an_ops_suspension_of_a_suspended_site_runs_no_phase_and_stops_deletion() -> None:
    driver = Driver()
    driver.run_until(snapshot(), T0 + 40 * DAY)
    assert driver.record.state is State.SUSPENDED
    decision = suspend(driver.record, driver.now, reason="evidence for a complaint")
    assert decision.actions == ()
    driver.record = decision.record
    driver.run_until(snapshot(), T0 + 200 * DAY)
    assert driver.record.state is State.OPS_SUSPENDED
    lifted = unsuspend(driver.record, driver.now)
    assert lifted.record.state is State.SUSPENDED  # the policy's suspension goes on
    assert lifted.actions == ()


def test_unsuspending_a_non_paying_account_holds_it_with_the_site_back() -> None:
    driver = Driver()
    driver.run_until(snapshot(), T0 + 40 * DAY)
    assert driver.record.state is State.SUSPENDED
    decision = unsuspend(
        driver.record, driver.now, reason="promised to pay Friday", until=T0 + 44 * DAY
    )
    assert decision.record.state is State.ON_HOLD
    assert [str(a) for a in decision.actions] == ["playbook:unsuspend"]
    driver.record = decision.record
    # No payment: when the hold ends the suspension comes again, with its notice.
    driver.run_until(snapshot(), T0 + 44 * DAY)
    assert [s.label for s in driver.steps[-2:]] == ["final-notice", "suspended"]
    assert "playbook:suspend" in driver.steps[-1].actions


def test_a_payment_while_unsuspended_on_hold_reactivates_without_another_unsuspend() -> None:
    driver = Driver()
    driver.run_until(snapshot(), T0 + 40 * DAY)
    driver.record = unsuspend(driver.record, driver.now, reason="promise").record
    driver.at(T0 + 42 * DAY, snapshot(balance="0"))
    assert driver.record.state is State.ACTIVE
    assert "playbook:unsuspend" not in driver.steps[-1].actions


@pytest.mark.parametrize(
    ("state", "problem"),
    [
        (State.DELETED, "acme is deleted"),
        (State.LEGAL_HOLD, "under a legal hold; release it first"),
        (State.OPS_SUSPENDED, "already suspended by ops"),
        (State.DELETE_FAILED, "failed its deletion"),
    ],
)
def test_suspend_refusals_name_the_problem(state: State, problem: str) -> None:
    with pytest.raises(CommandRefusedError, match=problem):
        suspend(LifecycleRecord(account_id="acme", state=state), T0, reason="x")


def test_unsuspend_refuses_an_account_that_is_not_suspended() -> None:
    with pytest.raises(CommandRefusedError, match="acme is active, not suspended"):
        unsuspend(LifecycleRecord(account_id="acme"), T0)
    with pytest.raises(CommandRefusedError, match="not in the future"):
        unsuspend(LifecycleRecord(account_id="acme", state=State.SUSPENDED), T0, until=T0)


def test_reactivation_after_a_restore() -> None:
    deleted = LifecycleRecord(account_id="acme", state=State.DELETED)
    decision = reactivate(deleted, T0, reason="backup B restored")
    assert decision.record.state is State.ACTIVE and decision.actions == ()
    assert decision.reason == "reactivated by ops after a restore: backup B restored"
    suspended = LifecycleRecord(account_id="acme", state=State.REMOVAL_WARNED, warnings_sent=1)
    unsuspending = reactivate(suspended, T0, reason="r")
    assert unsuspending.record == LifecycleRecord(account_id="acme")
    assert [str(a) for a in unsuspending.actions] == ["playbook:unsuspend"]
    with pytest.raises(CommandRefusedError, match="only a deleted or suspended account"):
        reactivate(LifecycleRecord(account_id="acme", state=State.REMINDED), T0, reason="r")
    with pytest.raises(CommandRefusedError, match="under a legal hold"):
        reactivate(LifecycleRecord(account_id="acme", state=State.LEGAL_HOLD), T0, reason="r")
