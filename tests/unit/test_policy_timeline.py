"""Time-travel tests of the lifecycle policy: whole timelines on a virtual clock."""

from __future__ import annotations

import itertools
from datetime import timedelta
from decimal import Decimal

import pytest

from daemon.config.schema import PolicyConfig
from daemon.domain.snapshot import Instalment
from daemon.domain.states import State
from daemon.policy import LifecycleRecord, accept_final_notice, decide
from daemon.policy.commands import CommandRefusedError, hold, release
from tests.unit.policy_helpers import DAY, T0, Driver, Step, anytime_policy, snapshot


def test_default_policy_follows_the_documented_timeline() -> None:
    """Reminders at 3/10/17 days, final notice at 28, suspension 7 days later,
    warnings 14 and 3 days before deletion 30 days after suspension."""
    driver = Driver(start=T0 - DAY)
    driver.run_until(snapshot(), T0 + 80 * DAY)
    assert driver.steps == [
        Step(0, "overdue", ()),
        Step(3, "reminded(1)", ("notice:reminder#1",)),
        Step(10, "reminded(2)", ("notice:reminder#2",)),
        Step(17, "reminded(3)", ("notice:reminder#3",)),
        Step(28, "final-notice", ("notice:final",)),
        # The suspension and deletion notices follow their phases (see the runner).
        Step(35, "suspended", ("playbook:suspend",)),
        Step(51, "removal-warned(1)", ("notice:removal-warning#1",)),
        Step(62, "removal-warned(2)", ("notice:removal-warning#2",)),
        Step(65, "deleted", ("playbook:delete",)),
    ]
    assert driver.record.suspend_at == T0 + 35 * DAY
    assert driver.record.delete_at == T0 + 65 * DAY


def test_final_notice_names_the_suspension_date_a_notice_period_ahead() -> None:
    driver = Driver()
    driver.run_until(snapshot(), T0 + 28 * DAY)
    assert driver.record.state is State.FINAL_NOTICE
    assert driver.record.final_notice_at == T0 + 28 * DAY
    assert driver.record.suspend_at == T0 + 35 * DAY
    assert "suspension set for 2026-02-09 09:00 UTC" in driver.decisions[-1].reason


def test_payment_the_day_before_suspension_cancels_it() -> None:
    driver = Driver()
    driver.run_until(snapshot(), T0 + 34 * DAY)
    assert driver.record.state is State.FINAL_NOTICE
    driver.at(T0 + 34 * DAY, snapshot(balance="0"))
    last = driver.decisions[-1]
    assert (last.from_state, last.to_state) == (State.FINAL_NOTICE, State.ACTIVE)
    assert last.reason == "paid in full; suspension planned for 2026-02-09 09:00 UTC cancelled"
    assert last.actions == ()
    driver.run_until(snapshot(balance="0"), T0 + 90 * DAY)
    assert all("suspend" not in action for step in driver.steps for action in step.actions)
    assert driver.record == LifecycleRecord(account_id="acme", last_contact_at=T0 + 28 * DAY)


def test_payment_while_suspended_reactivates_and_confirms() -> None:
    driver = Driver()
    driver.run_until(snapshot(), T0 + 40 * DAY)
    assert driver.record.state is State.SUSPENDED
    driver.at(T0 + 41 * DAY, snapshot(balance="0"))
    assert driver.steps[-1] == Step(41, "active", ("playbook:unsuspend", "notice:reactivation"))


def test_payment_after_deletion_changes_nothing() -> None:
    driver = Driver()
    driver.run_until(snapshot(), T0 + 70 * DAY)
    assert driver.record.state is State.DELETED
    decision = decide(snapshot(balance="0"), driver.record, driver.policy, T0 + 71 * DAY)
    assert not decision.changed
    assert decision.reason == "deleted accounts are final"


def test_hold_stops_the_clock_and_release_resumes_it() -> None:
    """Held from day 5 to day 15: every later deadline moves 10 days."""
    driver = Driver()
    driver.run_until(snapshot(), T0 + 5 * DAY)
    assert driver.record.label == "reminded(1)"
    driver.record = hold(driver.record, driver.now, reason="client disputes invoice").record
    driver.run_until(snapshot(), T0 + 15 * DAY)
    assert driver.record.state is State.ON_HOLD
    assert driver.steps[-1].day == 3  # nothing happened while held
    driver.record = release(driver.record, T0 + 15 * DAY).record
    driver.now = T0 + 15 * DAY
    driver.run_until(snapshot(), T0 + 50 * DAY)
    assert [(s.day, s.label) for s in driver.steps[2:]] == [
        (20, "reminded(2)"),
        (27, "reminded(3)"),
        (38, "final-notice"),
        (45, "suspended"),
    ]


def test_hold_with_an_end_date_releases_itself() -> None:
    driver = Driver()
    driver.run_until(snapshot(), T0 + 5 * DAY)
    driver.record = hold(driver.record, driver.now, reason="x", until=T0 + 8 * DAY).record
    driver.run_until(snapshot(), T0 + 13 * DAY)
    assert [(s.day, s.label) for s in driver.steps[2:]] == [(8, "reminded(1)"), (13, "reminded(2)")]
    assert driver.decisions[2].reason == "hold ended at 2026-01-13 09:00 UTC"


def test_legal_hold_blocks_deletion_until_released() -> None:
    driver = Driver()
    driver.run_until(snapshot(), T0 + 60 * DAY)
    driver.record = hold(driver.record, driver.now, reason="court order", legal=True).record
    driver.run_until(snapshot(), T0 + 400 * DAY)
    assert driver.record.state is State.LEGAL_HOLD
    assert all(step.label != "deleted" for step in driver.steps)


def test_payment_during_legal_hold_unsuspends_but_keeps_the_hold() -> None:
    driver = Driver()
    driver.run_until(snapshot(), T0 + 40 * DAY)
    driver.record = hold(driver.record, driver.now, reason="court order", legal=True).record
    driver.at(T0 + 45 * DAY, snapshot(balance="0"))
    assert driver.steps[-1] == Step(45, "legal-hold", ("playbook:unsuspend", "notice:reactivation"))
    assert driver.record.resume_state is State.ACTIVE
    driver.record = release(driver.record, T0 + 50 * DAY).record
    assert driver.record.state is State.ACTIVE


def test_hold_refusals_name_the_problem() -> None:
    record = LifecycleRecord(account_id="acme", state=State.DELETED)
    with pytest.raises(CommandRefusedError, match="acme is deleted"):
        hold(record, T0, reason="x")
    with pytest.raises(CommandRefusedError, match="not in the future"):
        hold(LifecycleRecord(account_id="acme"), T0, reason="x", until=T0 - DAY)
    with pytest.raises(CommandRefusedError, match="is active, not on hold"):
        release(LifecycleRecord(account_id="acme"), T0)


def test_missed_instalment_resumes_the_clock() -> None:
    """Plan agreed on day 20 (reminded(3)); instalment due day 25 missed (3 days grace)
    on day 28: the clock resumes with the 8 paused days added."""
    plan = (
        Instalment(due_at=T0 + 25 * DAY, amount=Decimal("60.00")),
        Instalment(due_at=T0 + 55 * DAY, amount=Decimal("60.00")),
    )
    driver = Driver()
    driver.run_until(snapshot(), T0 + 20 * DAY)
    driver.at(T0 + 20 * DAY, snapshot(instalments=plan))
    assert driver.steps[-1] == Step(20, "payment-plan", ("notice:payment-plan",))
    driver.run_until(snapshot(instalments=plan), T0 + 40 * DAY)
    labels = [(s.day, s.label) for s in driver.steps[4:]]
    assert labels == [(20, "payment-plan"), (28, "reminded(3)"), (36, "final-notice")]
    assert "instalment of 60.00 EUR due 2026-01-30 09:00 UTC missed" in driver.decisions[5].reason


def test_instalments_kept_hold_the_clock_until_paid_in_full() -> None:
    paid = (Instalment(due_at=T0 + 25 * DAY, amount=Decimal("60.00"), paid=True),)
    pending = (*paid, Instalment(due_at=T0 + 55 * DAY, amount=Decimal("60.00")))
    driver = Driver()
    driver.run_until(snapshot(), T0 + 20 * DAY)
    driver.at(T0 + 20 * DAY, snapshot(instalments=pending))
    driver.run_until(snapshot(balance="60.00", instalments=pending), T0 + 50 * DAY)
    assert driver.record.state is State.PAYMENT_PLAN
    driver.at(T0 + 56 * DAY, snapshot(balance="0", instalments=pending))
    # mypy keeps the state narrowed by the assert above across driver.at(), which
    # replaces the record: the two states do overlap.
    assert driver.record.state is State.ACTIVE  # type: ignore[comparison-overlap]


@pytest.mark.parametrize(
    "offsets, gap",
    [(["1d", "2d", "3d"], "3d"), (["1d", "2d"], "5d"), (["3d", "4d", "5d"], "2d")],
)
def test_no_two_contacts_closer_than_the_minimum_gap(offsets: list[str], gap: str) -> None:
    policy = PolicyConfig.model_validate(
        {
            "reminder_offsets": offsets,
            "min_contact_gap": gap,
            "final_notice_offset": "8d",
            "removal_warnings": ["5d", "2d", "1d"],
        }
    )
    driver = Driver(policy)
    driver.run_until(snapshot(), T0 + 100 * DAY)
    days = driver.contact_days()
    assert driver.record.state is State.DELETED
    assert len(days) >= 5
    minimum = policy.min_contact_gap / DAY
    # Suspension follows the final notice by the notice period (7d), so every gap counts.
    # Contact hours apply too (the default policy's), so gaps are not whole days.
    assert all(later - earlier >= minimum - 1e-9 for earlier, later in itertools.pairwise(days))


def test_an_account_first_seen_past_the_final_notice_day_is_reminded_first() -> None:
    """First seen 30 days overdue: one reminder (numbered 1, as it is the first), then
    the final notice only after the minimum gap, not out of the blue."""
    driver = Driver(start=T0 + 30 * DAY)
    driver.run_until(snapshot(), T0 + 34 * DAY)
    assert driver.steps[:3] == [
        Step(30, "overdue", ()),
        Step(30, "reminded(1)", ("notice:reminder#1",)),
        Step(33, "final-notice", ("notice:final",)),
    ]
    assert driver.record.reminders_sent == 1
    assert driver.record.suspend_at == T0 + 40 * DAY


def test_no_final_notice_without_a_reminder_even_when_the_gap_is_zero() -> None:
    """The reminder comes first whatever the gap; with no gap the final follows at once."""
    driver = Driver(anytime_policy(min_contact_gap="0s"), start=T0 + 30 * DAY)
    driver.settle(snapshot())
    assert [s.label for s in driver.steps] == ["overdue", "reminded(1)", "final-notice"]


def test_catch_up_skips_old_reminders_and_numbers_by_what_was_sent() -> None:
    """First seen on day 12: the reminder sent is number 1 (reminder 2 would claim a
    first one that never went out); the next offset still due (day 17) sends number 2."""
    driver = Driver(start=T0 + 12 * DAY)
    driver.run_until(snapshot(), T0 + 30 * DAY)
    assert [step for step in driver.steps if step.actions][:3] == [
        Step(12, "reminded(1)", ("notice:reminder#1",)),
        Step(17, "reminded(2)", ("notice:reminder#2",)),
        Step(28, "final-notice", ("notice:final",)),
    ]


def test_balance_below_minimum_is_not_overdue() -> None:
    driver = Driver()
    driver.run_until(snapshot(balance="0.50"), T0 + 60 * DAY)
    assert driver.steps == []


def test_new_account_grace_delays_the_clock() -> None:
    """Created 2 days before its first due date: the clock starts at creation + 14 days."""
    driver = Driver()
    driver.run_until(snapshot(created_at=T0 - 2 * DAY), T0 + 16 * DAY)
    assert [(s.day, s.label) for s in driver.steps] == [(0, "overdue"), (15, "reminded(1)")]


def test_exempt_account_is_never_contacted() -> None:
    driver = Driver()
    driver.run_until(snapshot(exempt=True), T0 + 100 * DAY)
    assert [s.label for s in driver.steps] == ["exempt"]


def test_exemption_lifted_resumes_where_it_paused() -> None:
    driver = Driver()
    driver.run_until(snapshot(), T0 + 4 * DAY)
    driver.at(T0 + 4 * DAY, snapshot(exempt=True))
    driver.run_until(snapshot(exempt=True), T0 + 14 * DAY)
    driver.at(T0 + 14 * DAY, snapshot())
    driver.run_until(snapshot(), T0 + 20 * DAY)
    assert [(s.day, s.label) for s in driver.steps] == [
        (0, "overdue"),
        (3, "reminded(1)"),
        (4, "exempt"),
        (14, "reminded(1)"),
        (20, "reminded(2)"),
    ]


def test_suspension_needs_a_final_notice_accepted_by_the_mail_server() -> None:
    """A final notice queued but never accepted (or refused) never leads to suspension;
    once accepted, the notice period runs from the acceptance, not from the queueing."""
    record = LifecycleRecord(account_id="acme", state=State.FINAL_NOTICE, suspend_at=T0)
    decision = decide(snapshot(), record, anytime_policy(), T0 + 100 * DAY)
    assert not decision.changed
    assert decision.wake_at is None
    assert decision.reason == "no suspension until the mail server has accepted the final notice"

    accepted = accept_final_notice(record, T0 + 2 * DAY)
    waiting = decide(snapshot(), accepted, anytime_policy(), T0 + 8 * DAY)
    assert not waiting.changed
    assert waiting.wake_at == T0 + 9 * DAY
    assert decide(snapshot(), accepted, anytime_policy(), T0 + 9 * DAY).to_state is State.SUSPENDED


def test_suspension_waits_a_full_notice_period_after_the_notice() -> None:
    record = LifecycleRecord(
        account_id="acme", state=State.FINAL_NOTICE, final_notice_at=T0, suspend_at=T0 + DAY
    )
    decision = decide(snapshot(), record, anytime_policy(), T0 + 3 * DAY)
    assert not decision.changed
    assert decision.wake_at == T0 + timedelta(days=7)


def test_account_missing_from_billing_is_left_alone() -> None:
    record = LifecycleRecord(
        account_id="acme", state=State.FINAL_NOTICE, final_notice_at=T0, suspend_at=T0 + 7 * DAY
    )
    decision = decide(None, record, anytime_policy(), T0 + 30 * DAY)
    assert not decision.changed
    assert decision.wake_at is None


def test_a_warning_that_cannot_go_out_in_time_names_the_later_deletion_it_causes() -> None:
    """Warnings 5, 2 and 1 days before deletion with a 3-day gap: the last one cannot go
    out a day before; sent when the gap allows, it names a deletion a full gap later, and
    the deletion happens exactly then."""
    policy = anytime_policy(removal_warnings=["5d", "2d", "1d"], min_contact_gap="3d")
    driver = Driver(policy)
    driver.run_until(snapshot(), T0 + 120 * DAY)
    warnings = [d for d in driver.decisions if d.to_state is State.REMOVAL_WARNED]
    deleted = next(i for i, d in enumerate(driver.decisions) if d.to_state is State.DELETED)
    planned = T0 + 65 * DAY
    named = [d.record.delete_at for d in warnings]
    assert named[:2] == [planned, planned]  # sent on time: the planned deletion holds
    assert named[2] == planned + 4 * DAY  # the third went out at planned + 1d, gap 3d
    assert driver.steps[deleted].day == 69
    assert driver.decisions[deleted].record.delete_at == named[2]
