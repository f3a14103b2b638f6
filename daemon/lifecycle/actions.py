"""Queueing playbook phases for the runner, so a transition's work survives a crash."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from daemon.domain.phases import Phase, phase_priority
from daemon.domain.states import ActionStatus
from daemon.store.models import ScheduledAction
from daemon.store.records import action_hosts


def queue_playbook(
    session: Session, account_id: str, phase: Phase, event_id: int, now: datetime
) -> ScheduledAction | None:
    """Queue `phase` for the account in the caller's transaction.

    An unsuspend that meets a suspend which never started cancels both: there is
    nothing on the host to undo. Returns the queued action, or None when the
    queue cancelled out.
    """
    if phase is Phase.UNSUSPEND:
        waiting = session.scalars(
            select(ScheduledAction).where(
                ScheduledAction.account_id == account_id,
                ScheduledAction.kind == "playbook",
                ScheduledAction.name == Phase.SUSPEND.value,
                ScheduledAction.status == ActionStatus.PENDING,
            )
        ).all()
        if waiting:
            for action in waiting:
                action.status, action.updated_at = ActionStatus.CANCELLED, now
                action.error = "cancelled before it started: the account was paid"
            return None
    action = ScheduledAction(
        account_id=account_id,
        event_id=event_id,
        kind="playbook",
        name=phase.value,
        status=ActionStatus.PENDING,
        due_at=now,
        created_at=now,
        updated_at=now,
        attempts=0,
        priority=phase_priority(phase),
        hosts=action_hosts(session, account_id),
    )
    session.add(action)
    return action
