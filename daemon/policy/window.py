"""When a client may be contacted: outside quiet hours, on contact days, in their time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo

from daemon.config.schema import ALL_WEEKDAYS, PolicyConfig


def next_contact_time(moment: datetime, zone: str, policy: PolicyConfig) -> datetime:
    """Return the first instant at or after `moment` when the policy allows a contact.

    Takes an aware UTC `moment`, the client's IANA time zone and the policy (its
    `quiet_hours` and `contact_days`). Returns `moment` itself when it is allowed,
    else the end of the quiet hours (or the start of the next contact day) in the
    client's zone, as UTC.
    """
    local = moment.astimezone(_zone(zone))
    for _ in range(9):  # a week and a quiet night at most
        if ALL_WEEKDAYS[local.weekday()] not in policy.contact_days:
            local = _at(local.date() + timedelta(days=1), _quiet_end(policy), local.tzinfo)
            continue
        quiet = _quiet(policy)
        if quiet is None or not _inside(local.timetz().replace(tzinfo=None), *quiet):
            return local.astimezone(UTC)
        _start, end = quiet
        day = local.date() if local.time() < end else local.date() + timedelta(days=1)
        local = _at(day, end, local.tzinfo)
    return local.astimezone(UTC)


def _quiet(policy: PolicyConfig) -> tuple[time, time] | None:
    """Return the quiet hours as (start, end) local times, or None when there are none."""
    return _parse_quiet(policy.quiet_hours) if policy.quiet_hours else None


@lru_cache(maxsize=64)
def _parse_quiet(text: str) -> tuple[time, time]:
    """Parse 'HH:MM-HH:MM' (checked by the schema) once per distinct value."""
    start, end = text.split("-")
    return time.fromisoformat(start), time.fromisoformat(end)


def _quiet_end(policy: PolicyConfig) -> time:
    """Return when a contact day opens: the end of the quiet hours, or midnight."""
    quiet = _quiet(policy)
    return quiet[1] if quiet else time(0, 0)


def _inside(moment: time, start: time, end: time) -> bool:
    """Whether a local time of day falls in [start, end), which may wrap midnight."""
    if start <= end:
        return start <= moment < end
    return moment >= start or moment < end


def _at(day: date, at: time, zone: tzinfo | None) -> datetime:
    """Return `day` at local time `at` in `zone` (a wall time skipped by DST moves forward)."""
    local = datetime.combine(day, at, tzinfo=zone)
    # Round-trip through UTC normalises a nonexistent wall time (spring forward).
    return local.astimezone(UTC).astimezone(zone)


@lru_cache(maxsize=512)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)
