"""The instants a notice names: computed once, by one function, and then kept (invariant 3).

The final notice names when the site will be suspended and when its data will be
deleted; the suspension notice and the removal warnings name the deletion. Each
instant is the first whole minute the policy allows at or after the nominal one
(the notice period, the minimum gap since the notice, the client's contact hours and
days, DST applied), so the act happens exactly when the notice says. The policy,
`lapse notices preview`, `lapse plan` and `lapse simulate` all call these functions.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from daemon.config.schema import PolicyConfig
from daemon.policy.window import next_contact_time, previous_contact_time


def suspension_instant(sent_at: datetime, policy: PolicyConfig, zone: str) -> datetime:
    """Return when a final notice composed at `sent_at` suspends the site.

    Takes the aware UTC composition time, the account's policy and the client's time
    zone. Returns an aware UTC instant on a whole minute: at least the notice period
    and the minimum contact gap after `sent_at`, inside the client's contact hours.
    """
    wait = max(policy.notice_period, policy.min_contact_gap)
    return next_contact_time(ceil_minute(sent_at + wait), zone, policy)


def removal_instant(suspended_at: datetime, policy: PolicyConfig, zone: str) -> datetime:
    """Return when data suspended at `suspended_at` is deleted: the removal period later,
    at the next whole minute inside the client's contact hours (aware UTC)."""
    return next_contact_time(ceil_minute(suspended_at + policy.removal_period), zone, policy)


def removal_after_late_warning(
    sent_at: datetime, lead: timedelta, policy: PolicyConfig, zone: str
) -> datetime:
    """Return the deletion instant a warning sent at `sent_at` names when it went out too
    late to give its full `lead` before the planned one: `lead` (and the minimum gap)
    after it, inside contact hours (aware UTC, whole minute)."""
    wait = max(lead, policy.min_contact_gap)
    return next_contact_time(ceil_minute(sent_at + wait), zone, policy)


def warning_due(delete_at: datetime, lead: timedelta, policy: PolicyConfig, zone: str) -> datetime:
    """Return when the removal warning `lead` before `delete_at` goes out: the last contact
    minute at or before `delete_at - lead`, so contact hours make it early, never late."""
    return previous_contact_time(delete_at - lead, zone, policy)


def ceil_minute(moment: datetime) -> datetime:
    """Return `moment` rounded up to a whole minute (itself when already whole)."""
    floored = moment.replace(second=0, microsecond=0)
    return floored if floored == moment else floored + timedelta(minutes=1)
