"""Projecting the policy forward in virtual time, with no side effects.

Used by `lapse plan` (what will happen to whom and when) and `lapse simulate`
(a whole timeline over sample or given data). Both assume billing stays as it
is: nobody pays, nothing new is invoiced.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

from daemon.config.schema import PolicyConfig
from daemon.domain.snapshot import AccountSnapshot
from daemon.policy import LifecycleRecord, accept_final_notice, decide

# A lifecycle has about a dozen steps; this bounds a projection whatever the policy.
_MAX_STEPS = 100


@dataclass(frozen=True, slots=True)
class ProjectedStep:
    """One transition the projection expects."""

    at: datetime
    account_id: str
    from_state: str
    to_state: str
    reason: str
    actions: tuple[str, ...]


def project(
    snapshot: AccountSnapshot,
    record: LifecycleRecord,
    policy: PolicyConfig,
    start: datetime,
    until: datetime,
) -> Iterator[ProjectedStep]:
    """Yield each transition between `start` and `until`, in order.

    Takes the account's snapshot and record as they are now, its policy, and
    the window. Pure: nothing is written anywhere.
    """
    now, steps = start, 0
    while now <= until and steps < _MAX_STEPS:
        decision = decide(snapshot, record, policy, now)
        steps += 1
        if decision.changed:
            yield ProjectedStep(
                at=now,
                account_id=record.account_id,
                from_state=record.label,
                to_state=decision.record.label,
                reason=decision.reason,
                actions=tuple(str(action) for action in decision.actions),
            )
            # A projection assumes every notice is accepted as soon as it is queued.
            record = accept_final_notice(decision.record, now)
            continue
        if decision.wake_at is None or decision.wake_at <= now:
            return
        now = decision.wake_at


def project_all(
    accounts: list[tuple[AccountSnapshot, LifecycleRecord]],
    policy_for: Callable[[str], PolicyConfig],
    start: datetime,
    until: datetime,
) -> list[ProjectedStep]:
    """Project every account and return all steps sorted by time, then account."""
    steps = [
        step
        for snapshot, record in accounts
        for step in project(snapshot, record, policy_for(snapshot.plan), start, until)
    ]
    return sorted(steps, key=lambda step: (step.at, step.account_id))
