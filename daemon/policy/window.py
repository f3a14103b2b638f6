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


def previous_contact_time(moment: datetime, zone: str, policy: PolicyConfig) -> datetime:
    """Return the last whole minute at or before `moment` when the policy allows a contact.

    Takes an aware UTC `moment`, the client's IANA time zone and the policy. Returns
    `moment` floored to the minute when that minute is allowed, else the last minute
    before the quiet hours (or before the contact day ended) in the client's zone, as
    UTC. Used to send a warning early rather than late, so the deadline it names holds.
    """
    tz = _zone(zone)
    current = moment.replace(second=0, microsecond=0)
    for _ in range(20):  # a week of days and their quiet hours at most
        local = current.astimezone(tz)
        if ALL_WEEKDAYS[local.weekday()] not in policy.contact_days:
            current = _at(local.date(), time(0, 0), tz).astimezone(UTC) - _MINUTE
            continue
        quiet = _quiet(policy)
        wall = local.timetz().replace(tzinfo=None)
        if quiet is None or not _inside(wall, *quiet):
            return current
        start, _end = quiet
        day = local.date() if wall >= start else local.date() - timedelta(days=1)
        # min(): a quiet start inside a DST gap must still move the search back.
        current = min(_at(day, start, tz).astimezone(UTC) - _MINUTE, current - _MINUTE)
    return current


_MINUTE = timedelta(minutes=1)
