"""Operator commands on the lifecycle: hold and release. Pure, like the rules."""

from __future__ import annotations

from datetime import datetime

from daemon.policy.clock import pause, resume
from daemon.policy.model import Decision, LifecycleRecord, State
from daemon.policy.rules import move


class CommandRefusedError(ValueError):
    """The command does not fit the account's current state."""


def hold(
    record: LifecycleRecord,
    now: datetime,
    *,
    reason: str,
    until: datetime | None = None,
    legal: bool = False,
) -> Decision:
    """Put the account on an ops hold (or a legal hold): its clock stops.

    Returns the decision. Raises CommandRefusedError for a deleted account, a hold
    whose end is already past, or a legal hold given an end date (legal holds
    end only by an explicit release).
    """
    if record.state is State.DELETED:
        raise CommandRefusedError(
            f"account {record.account_id} is deleted; there is nothing to hold"
        )
    if until is not None and until <= now:
        raise CommandRefusedError(f"the hold's end {until.isoformat()} is not in the future")
    if legal and until is not None:
        raise CommandRefusedError("a legal hold has no end date; release it explicitly")
    into = State.LEGAL_HOLD if legal else State.ON_HOLD
    if record.state is State.LEGAL_HOLD and not legal:
        raise CommandRefusedError(
            "the account is under a legal hold; an ops hold cannot replace it"
        )
    after = pause(record, into, now, hold_reason=reason, hold_until=until)
    kind = "legal hold" if legal else "hold"
    return move(record, after, f"{kind}: {reason}")


def release(record: LifecycleRecord, now: datetime) -> Decision:
    """End an ops or legal hold; deadlines move forward by the time held.

    Raises CommandRefusedError when the account is not held.
    """
    if record.state not in (State.ON_HOLD, State.LEGAL_HOLD):
        raise CommandRefusedError(f"account {record.account_id} is {record.label}, not on hold")
    return move(record, resume(record, now), f"{record.state.value} released")
