"""One computed instant: what a notice prints is when the act happens, to the minute.

The final notice is composed at every hour of a week around both DST changes in three
zones, with the default policy's contact hours; the lifecycle is then followed on a
virtual clock and each printed instant compared with the transition it announced.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import pytest

from daemon.config.schema import BrandConfig, PolicyConfig
from daemon.domain.notice_kinds import NoticeKind
from daemon.domain.snapshot import AccountSnapshot, Contact
from daemon.domain.states import State
from daemon.lifecycle.preview import with_deadlines
from daemon.notices.compose import compose
from daemon.notices.money import format_when
from daemon.notices.request import NoticeRequest
from daemon.notices.templates import create_environment
from daemon.policy import Decision, LifecycleRecord, decide
from daemon.policy.instants import removal_instant, suspension_instant, warning_due
from daemon.policy.rules import late_final_notice
from daemon.policy.window import next_contact_time, previous_contact_time
from tests.unit.policy_helpers import DAY, Driver, snapshot

BRAND = BrandConfig(company_name="Example Hosting", sender="Billing <billing@example.com>")
ENV = create_environment(None)
HOUR = timedelta(hours=1)

# (zone, a day some ten days before the change, so that the notice period or the
# removal period of a notice composed in the following week crosses it)
DST_WEEKS = [
    ("America/New_York", datetime(2026, 2, 27, tzinfo=UTC)),  # spring forward 8 March
    ("America/New_York", datetime(2026, 10, 23, tzinfo=UTC)),  # fall back 1 November
    ("Europe/Berlin", datetime(2026, 3, 20, tzinfo=UTC)),  # 29 March
    ("Europe/Berlin", datetime(2026, 10, 16, tzinfo=UTC)),  # 25 October
    ("Australia/Sydney", datetime(2026, 3, 27, tzinfo=UTC)),  # fall back 5 April
    ("Australia/Sydney", datetime(2026, 9, 25, tzinfo=UTC)),  # spring forward 4 October
]


def owing(zone: str, due: datetime) -> AccountSnapshot:
    return dataclasses.replace(snapshot(due_at=due), contact=Contact("Ada", "ada@x.org", zone))


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def printed(
    kind: NoticeKind,
    number: int,
    account: AccountSnapshot,
    decision: Decision,
    policy: PolicyConfig,
    now: datetime,
) -> str:
    """Compose the notice the decision (or the phase after it) sends; return its text."""
    request = NoticeRequest(kind, number, account, decision.record, policy, now)
    return text_of(compose(request, BRAND, ENV).message())


def instants_in(text: str) -> set[str]:
    """Every 'Weekday, D Month YYYY, HH:MM ZONE' the notice prints."""
    return set(re.findall(r"\w+day, \d+ \w+ \d{4}, \d\d:\d\d [\w+-]+", text))


def follow(zone: str, sent_hour: datetime) -> None:
    """Drive one account whose final notice falls due at `sent_hour` to deletion and check
    every printed instant against the transition that happens."""
    policy = PolicyConfig()
    account = owing(zone, sent_hour - policy.final_notice_offset)
    driver = Driver(policy, start=sent_hour)
    driver.record = LifecycleRecord(
        account_id="acme",
        state=State.REMINDED,
        reminders_sent=3,
        clock_start=sent_hour - policy.final_notice_offset,
        last_contact_at=sent_hour - 10 * DAY,
    )
    promised: dict[str, datetime] = {}
    seen = 0
    for _ in range(40):
        decision = driver.settle(account)
        new, seen = driver.decisions[seen:], len(driver.decisions)
        for step in new:
            at = driver.now
            if "notice:final" in map(str, step.actions):
                text = printed(NoticeKind.FINAL, 0, account, step, policy, at)
                assert step.record.suspend_at is not None and step.record.delete_at is not None
                promised["suspend"], promised["delete"] = (
                    step.record.suspend_at,
                    step.record.delete_at,
                )
                assert format_when(promised["suspend"], zone) in instants_in(text)
                assert format_when(promised["delete"], zone) in instants_in(text)
            elif step.to_state is State.SUSPENDED:
                assert at == promised["suspend"], (zone, sent_hour)
                # What the runner's hook sends once the phase is done names the same deletion.
                text = printed(NoticeKind.SUSPENSION, 0, account, step, policy, at)
                assert format_when(promised["delete"], zone) in instants_in(text)
            elif step.to_state is State.REMOVAL_WARNED:
                text = printed(
                    NoticeKind.REMOVAL_WARNING, step.record.warnings_sent, account, step, policy, at
                )
                assert instants_in(text) == {format_when(promised["delete"], zone)}
            elif step.to_state is State.DELETED:
                assert at == promised["delete"], (zone, sent_hour)
                return
        assert decision.wake_at is not None
        driver.now = decision.wake_at
    raise AssertionError("the lifecycle did not reach deletion")


@pytest.mark.parametrize(("zone", "week"), DST_WEEKS, ids=[f"{z}-{w:%b}" for z, w in DST_WEEKS])
def test_printed_instants_are_the_instants_of_the_acts_across_dst(
    zone: str, week: datetime
) -> None:
    """Final notices due at every hour of a week: the suspension happens at the instant
    the final notice printed, the deletion at the one the final notice, the suspension
    notice and every warning printed (to the minute, in the client's local time)."""
    for hour in range(7 * 24):
        follow(zone, week + hour * HOUR + timedelta(minutes=17, seconds=31))


def test_the_suspension_instant_applies_contact_hours_and_the_period() -> None:
    """Composed Friday 19:59:30 in Berlin: 7 days later is Friday 19:59:30, rounded up to
    20:00, inside the quiet hours; the weekend follows, so Monday 08:00."""
    sent = datetime(2026, 3, 13, 18, 59, 30, tzinfo=UTC)  # Friday 19:59:30 CET
    at = suspension_instant(sent, PolicyConfig(), "Europe/Berlin")
    assert at == datetime(2026, 3, 23, 7, 0, tzinfo=UTC)  # Monday 08:00 CET
    assert format_when(at, "Europe/Berlin") == "Monday, 23 March 2026, 08:00 CET"
    # Thirty days of 24 hours later: 09:00 after the change to summer time.
    removed = removal_instant(at, PolicyConfig(), "Europe/Berlin")
    assert format_when(removed, "Europe/Berlin") == "Wednesday, 22 April 2026, 09:00 CEST"


def test_a_warning_goes_out_before_its_nominal_time_never_after() -> None:
    """Deletion Monday 08:00 Berlin: the 3-day warning's nominal time is Friday 08:00, a
    contact time; a 2-day one (Saturday 08:00) moves back to Friday 19:59."""
    policy = PolicyConfig()
    delete_at = datetime(2026, 3, 16, 7, 0, tzinfo=UTC)
    assert warning_due(delete_at, 3 * DAY, policy, "Europe/Berlin") == delete_at - 3 * DAY
    assert warning_due(delete_at, 2 * DAY, policy, "Europe/Berlin") == datetime(
        2026, 3, 13, 18, 59, tzinfo=UTC
    )


@pytest.mark.parametrize("zone", ["America/New_York", "Europe/Berlin", "Australia/Sydney"])
def test_previous_contact_time_is_allowed_and_the_latest_such_minute(zone: str) -> None:
    """Checked minute by minute over two weeks around a DST change: the answer is an
    allowed minute, and no allowed minute lies between it and the moment asked for."""
    policy = PolicyConfig()
    start = {
        "America/New_York": datetime(2026, 3, 4, tzinfo=UTC),
        "Europe/Berlin": datetime(2026, 3, 25, tzinfo=UTC),
        "Australia/Sydney": datetime(2026, 4, 1, tzinfo=UTC),
    }[zone]
    allowed = [
        next_contact_time(start + m * timedelta(minutes=1), zone, policy)
        == start + m * timedelta(minutes=1)
        for m in range(10 * 24 * 60)
    ]
    for m in range(3 * 24 * 60, 10 * 24 * 60, 37):
        moment = start + m * timedelta(minutes=1) + timedelta(seconds=20)
        found = previous_contact_time(moment, zone, policy)
        index = round((found - start) / timedelta(minutes=1))
        assert allowed[index], (zone, moment, found)
        assert not any(allowed[index + 1 : m + 1]), (zone, moment, found)


@pytest.mark.parametrize("hour", range(7 * 24))
def test_notices_preview_names_the_instants_the_policy_sets(hour: int) -> None:
    """`lapse notices preview --type final` fills in the deadlines with the policy's own
    functions: the same suspension and removal instants as the real final notice, in the
    week before New York's change to summer time."""
    policy = PolicyConfig()
    now = datetime(2026, 2, 27, 0, 17, 31, tzinfo=UTC) + hour * HOUR
    account = owing("America/New_York", now - policy.final_notice_offset)
    record = LifecycleRecord(
        account_id="acme",
        state=State.REMINDED,
        reminders_sent=3,
        clock_start=now - policy.final_notice_offset,
        last_contact_at=now - 10 * DAY,
    )
    waiting = decide(account, record, policy, now)  # contact hours may defer the notice
    sent = now if waiting.changed else waiting.wake_at
    assert sent is not None
    final = decide(account, record, policy, sent)
    assert final.record.state is State.FINAL_NOTICE
    previewed = with_deadlines(record, account, policy, sent)
    assert (previewed.suspend_at, previewed.delete_at) == (
        final.record.suspend_at,
        final.record.delete_at,
    )


def test_a_final_notice_accepted_within_the_minute_keeps_its_instant() -> None:
    """Accepted a few seconds after it was written (the usual case): the named instant
    holds. Accepted later than a minute past it: both instants move, by the same rule."""
    policy = PolicyConfig()
    sent = datetime(2026, 3, 10, 14, 0, tzinfo=UTC)  # a whole minute: no rounding slack
    suspend_at = suspension_instant(sent, policy, "Europe/Berlin")
    record = LifecycleRecord(
        account_id="acme",
        state=State.FINAL_NOTICE,
        suspend_at=suspend_at,
        delete_at=removal_instant(suspend_at, policy, "Europe/Berlin"),
    )
    assert late_final_notice(record, sent + timedelta(seconds=50), policy, "Europe/Berlin") is None
    moved = late_final_notice(record, sent + timedelta(minutes=3), policy, "Europe/Berlin")
    assert moved is not None
    assert moved.suspend_at == suspend_at + timedelta(minutes=3)
    assert moved.delete_at == removal_instant(moved.suspend_at, policy, "Europe/Berlin")
