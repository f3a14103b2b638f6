"""A payment that arrives after an account's deletion was queued but before it began.

The transition to `deleted` queues the delete phase; the phase may then wait (for a
free worker, for a person's approval, for its proof). Until its first step starts,
nothing of the account has left the host, so a payment in that time still wins
(paying at any point before deletion reactivates the account): the queued deletion is
withdrawn, in the same transaction as the account's evaluation, and the account goes
back to the state the deletion left, from which the policy reactivates it as paid.

A deletion that started a step is never withdrawn here: what it did is for ops to see
(the payment check before each step stops it, and `lapse restore` brings a site back).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from daemon.domain.phases import Phase
from daemon.domain.states import ActionStatus, ApprovalStatus, State
from daemon.store.models import Approval, Event, PlaybookRun, ScheduledAction, StepRecord

# Who closes an approval the payment made moot, as the approval queue shows it.
WITHDRAWN_BY = "billing"


def withdraw_unstarted_deletion(session: Session, account_id: str, now: datetime) -> State | None:
    """Withdraw the account's newest delete phase if no step of it has started; return
    the state the transition to `deleted` came from, or None when there is no such
    deletion (none queued, or one that started: then nothing is changed).

    A pending phase is cancelled with a conditional update naming no claimant, so a
    worker that claims it at the same moment wins or loses whole: never both. A waiting
    or approved approval of it is closed as rejected by billing.
    """
    action = session.scalars(
        select(ScheduledAction)
        .where(
            ScheduledAction.account_id == account_id,
            ScheduledAction.name == Phase.DELETE.value,
        )
        .order_by(ScheduledAction.id.desc())
        .limit(1)
    ).first()
    if action is None or action.status not in (ActionStatus.PENDING, ActionStatus.CANCELLED):
        return None
    started = session.scalar(
        select(
            exists().where(
                StepRecord.run_id == PlaybookRun.id,
                PlaybookRun.action_id == action.id,
                StepRecord.started_at.is_not(None),
            )
        )
    )
    if started:
        return None
    if action.status == ActionStatus.PENDING:
        withdrawn = session.execute(
            update(ScheduledAction)
            .where(
                ScheduledAction.id == action.id,
                ScheduledAction.status == ActionStatus.PENDING,
                ScheduledAction.claimed_by.is_(None),
            )
            .values(
                status=ActionStatus.CANCELLED,
                updated_at=now,
                error="paid before the deletion began",
            )
            .execution_options(synchronize_session=False)
        )
        if withdrawn.rowcount != 1:  # type: ignore[attr-defined]
            return None  # a worker claimed it first: its payment check stops it
    session.execute(
        update(Approval)
        .where(
            Approval.action_id == action.id,
            Approval.status.in_((ApprovalStatus.WAITING, ApprovalStatus.APPROVED)),
        )
        .values(
            status=ApprovalStatus.REJECTED,
            decided_at=now,
            decided_by=WITHDRAWN_BY,
            reason="paid before the deletion began",
        )
        .execution_options(synchronize_session=False)
    )
    queued_by = session.get(Event, action.event_id) if action.event_id else None
    return State(queued_by.from_state) if queued_by else State.REMOVAL_WARNED
