"""Pausing and resuming the lifecycle clock, shared by every side state."""

from __future__ import annotations

from datetime import datetime, timedelta

from daemon.domain.states import SIDE_STATES, State
from daemon.policy.model import LifecycleRecord


def pause(
    record: LifecycleRecord, into: State, now: datetime, **changes: object
) -> LifecycleRecord:
    """Return `record` moved into side state `into` with its clock stopped at `now`.

    Moving from one side state to another keeps the original resume state and
    pause start, so the clock is shifted once, by the whole pause, on resume.
    """
    if record.state in SIDE_STATES:
        resume_state, paused_since = record.resume_state, record.paused_since
    else:
        resume_state, paused_since = record.state, now
    return record.evolve(
        state=into, resume_state=resume_state, paused_since=paused_since, **changes
    )


def resume(record: LifecycleRecord, now: datetime) -> LifecycleRecord:
    """Return `record` back in the state it was paused from, deadlines moved by the pause."""
    paused_for = now - record.paused_since if record.paused_since else timedelta(0)
    return record.evolve(
        state=record.resume_state or State.ACTIVE,
        resume_state=None,
        paused_since=None,
        hold_reason=None,
        hold_until=None,
        clock_start=_later(record.clock_start, paused_for),
        suspend_at=_later(record.suspend_at, paused_for),
        delete_at=_later(record.delete_at, paused_for),
    )


def _later(moment: datetime | None, by: timedelta) -> datetime | None:
    return moment + by if moment is not None else None
