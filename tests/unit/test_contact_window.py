"""Contact hours: quiet hours and contact days in the client's time zone."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from daemon.config.schema import PolicyConfig
from daemon.domain.snapshot import Contact
from daemon.policy.window import next_contact_time
from tests.unit.policy_helpers import DAY, T0, Driver, snapshot

BERLIN = ZoneInfo("Europe/Berlin")


# A wall-clock time: year, month, day, hour, minute.
Wall = tuple[int, int, int, int, int]


def local(zone: ZoneInfo, year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    """An aware UTC datetime for a wall-clock time in `zone`."""
    return datetime(year, month, day, hour, minute, tzinfo=zone).astimezone(UTC)


@pytest.mark.parametrize(
    ("wall", "allowed"),
    [
        ((2026, 3, 3, 12, 0), (2026, 3, 3, 12, 0)),  # Tuesday noon: at once
        ((2026, 3, 3, 3, 0), (2026, 3, 3, 8, 0)),  # Tuesday 03:00: at 08:00
        ((2026, 3, 3, 20, 0), (2026, 3, 4, 8, 0)),  # Tuesday 20:00: Wednesday 08:00
        ((2026, 3, 6, 21, 30), (2026, 3, 9, 8, 0)),  # Friday night: Monday 08:00
        ((2026, 3, 7, 11, 0), (2026, 3, 9, 8, 0)),  # Saturday: Monday 08:00
        ((2026, 3, 29, 1, 0), (2026, 3, 30, 8, 0)),  # Sunday of the DST change: Monday
    ],
)
def test_next_contact_time_in_berlin(wall: Wall, allowed: Wall) -> None:
    policy = PolicyConfig()

    assert next_contact_time(local(BERLIN, *wall), "Europe/Berlin", policy) == local(
        BERLIN, *allowed
    )


def test_the_clients_zone_decides_not_the_servers() -> None:
    policy = PolicyConfig()
    moment = datetime(2026, 3, 3, 12, 0, tzinfo=UTC)  # Tuesday: 13:00 Berlin, 21:00 Tokyo

    assert next_contact_time(moment, "Europe/Berlin", policy) == moment
    assert next_contact_time(moment, "Asia/Tokyo", policy) == local(
        ZoneInfo("Asia/Tokyo"), 2026, 3, 4, 8, 0
    )


def test_no_quiet_hours_and_every_day_allows_any_time() -> None:
    policy = PolicyConfig.model_validate(
        {"quiet_hours": None, "contact_days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}
    )
    moment = local(BERLIN, 2026, 3, 7, 23, 30)

    assert next_contact_time(moment, "Europe/Berlin", policy) == moment


def test_a_bad_quiet_hours_value_is_refused_by_the_schema() -> None:
    with pytest.raises(ValueError, match="quiet_hours"):
        PolicyConfig.model_validate({"quiet_hours": "8pm-8am"})


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York", "Asia/Tokyo"])
def test_default_policy_contacts_only_in_contact_hours_and_never_within_the_gap(
    zone: str,
) -> None:
    """The whole default lifecycle, with the invoice falling due on a Friday evening in
    the client's zone: every contact lands on a weekday between 08:00 and 20:00 there,
    in the documented order, and never two within the minimum gap."""
    tz = ZoneInfo(zone)
    due = local(tz, 2026, 1, 9, 19, 0)  # a Friday, 19:00 local
    account = dataclasses.replace(snapshot(due_at=due), contact=Contact("Ada", "a@x.org", zone))
    driver = Driver(PolicyConfig(), start=due)
    driver.run_until(account, due + 120 * DAY)

    contacts = [(T0 + step.day * DAY, step.actions) for step in driver.steps if step.actions]
    assert [actions[-1] for _at, actions in contacts] == [
        "notice:reminder#1",
        "notice:reminder#2",
        "notice:reminder#3",
        "notice:final",
        "playbook:suspend",  # the suspension notice follows the phase
        "notice:removal-warning#1",
        "notice:removal-warning#2",
        "playbook:delete",  # the deletion notice follows the phase
    ]
    for at, actions in contacts:
        wall = at.astimezone(tz)
        assert wall.weekday() < 5, (actions, wall)
        assert 8 <= wall.hour < 20, (actions, wall)
    times = [at for at, _actions in contacts]
    gap = PolicyConfig().min_contact_gap - timedelta(seconds=1)  # day offsets are floats
    assert all(later - earlier >= gap for earlier, later in itertools.pairwise(times))
