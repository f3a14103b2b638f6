"""The queue of playbook actions in the state database: which are due, which an account
has waiting, queueing one for ops, reopening a failed one, and claiming one to run.

An action is claimed with one conditional update naming this process, so two
processes (the daemon and an operator's command) never run it at once
(daemon.playbooks.claims names the process).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from daemon.domain.clock import Clock
from daemon.domain.errors import UnknownAccountError
from daemon.domain.phases import Phase
from daemon.domain.snapshot import AccountSnapshot
from daemon.domain.states import ActionStatus, RunStatus, State, StepStatus
from daemon.playbooks.claims import claim_is_stale, this_process
from daemon.playbooks.ports import BrakeStatus
from daemon.store.models import Account, PlaybookRun, ScheduledAction, StepRecord
from daemon.store.records import stored_snapshot

log = structlog.get_logger("lapse.playbooks")


@dataclass(frozen=True)
class ClaimedAction:
    """An action this process now runs, with what its phase needs of the account."""

    action_id: int
    phase: str
    account_id: str
    since: datetime  # when the phase was asked for
    snapshot: AccountSnapshot | None
    suspended_at: datetime | None
    legal_hold: bool


class ActionQueue:
    """Picks, queues and claims the playbook actions of the state database."""

    def __init__(self, sessions: sessionmaker[Session], clock: Clock, brake: BrakeStatus) -> None:
        self.sessions = sessions
        self.clock = clock
        self.brake = brake

    def due(self) -> list[int]:
        """The ids of the playbook actions due now, pending or left running, oldest first;
        while the safety brake holds, without suspend and delete."""
        with self.sessions() as session:
            due = session.scalars(
                select(ScheduledAction.id)
                .where(
                    ScheduledAction.kind == "playbook",
                    ScheduledAction.status.in_((ActionStatus.PENDING, ActionStatus.RUNNING)),
                    ScheduledAction.due_at <= self.clock(),
                )
                .order_by(ScheduledAction.id)
            ).all()
        if self.brake.status() is not None:
            return self._unbraked(due)
        return list(due)

    def _unbraked(self, due: list[int] | Sequence[int]) -> list[int]:
        """The actions that may run while the safety brake holds: not suspend or delete."""
        with self.sessions() as session:
            held = set(
                session.scalars(
                    select(ScheduledAction.id).where(
                        ScheduledAction.id.in_(list(due)),
                        ScheduledAction.name.in_((Phase.SUSPEND.value, Phase.DELETE.value)),
                    )
                )
            )
        if held:
            log.warning("safety brake holds destructive phases", actions=sorted(held))
        return [action_id for action_id in due if action_id not in held]

    def queued(self, account_id: str) -> list[tuple[int, str]]:
        """(action id, phase) of the account's pending playbook actions, oldest first."""
        with self.sessions() as session:
            queued = session.execute(
                select(ScheduledAction.id, ScheduledAction.name)
                .where(
                    ScheduledAction.account_id == account_id,
                    ScheduledAction.kind == "playbook",
                    ScheduledAction.status == ActionStatus.PENDING,
                )
                .order_by(ScheduledAction.id)
            ).all()
        return [(action_id, phase) for action_id, phase in queued]

    def add(self, account_id: str, phase: str) -> int:
        """Queue `phase` for the account, due now; return the action's id.

        Raises UnknownAccountError.
        """
        now = self.clock()
        with self.sessions.begin() as session:
            if session.get(Account, account_id) is None:
                raise UnknownAccountError(f"no account {account_id!r} in the state database")
            action = ScheduledAction(
                account_id=account_id,
                kind="playbook",
                name=phase,
                status=ActionStatus.PENDING,
                due_at=now,
                created_at=now,
                updated_at=now,
                attempts=0,
            )
            session.add(action)
            session.flush()
            return action.id

    def reopen_failed(self, account_id: str) -> tuple[int, str, str]:
        """Make the account's newest failed playbook action pending again, with its failed
        runs running and their failed steps pending, so it resumes at the failed step.

        Returns (action id, phase, the account's state). Raises UnknownAccountError, or
        ValueError when nothing failed.
        """
        with self.sessions.begin() as session:
            account = session.get(Account, account_id)
            if account is None:
                raise UnknownAccountError(f"no account {account_id!r} in the state database")
            action = session.scalars(
                select(ScheduledAction)
                .where(
                    ScheduledAction.account_id == account_id,
                    ScheduledAction.kind == "playbook",
                    ScheduledAction.status == ActionStatus.FAILED,
                )
                .order_by(ScheduledAction.id.desc())
            ).first()
            if action is None:
                raise ValueError(f"{account_id} has no failed playbook phase to retry")
            action.status, action.error = ActionStatus.PENDING, None
            action_id, phase, state = action.id, action.name, account.state
            for run in session.scalars(
                select(PlaybookRun).where(
                    PlaybookRun.action_id == action_id, PlaybookRun.status == RunStatus.FAILED
                )
            ):
                run.status = RunStatus.RUNNING
                for record in session.scalars(
                    select(StepRecord).where(
                        StepRecord.run_id == run.id, StepRecord.status == StepStatus.FAILED
                    )
                ):
                    record.status = StepStatus.PENDING
        return action_id, phase, state

    def claim(self, action_id: int, resume: bool = False) -> ClaimedAction | ActionStatus:
        """Claim the action for this process if it is pending (or, with `resume`, left
        running by a process that is gone).

        Returns the claimed action, or the status it has when this process may not run
        it ('running' when another process claimed it first).
        """
        with self.sessions.begin() as session:
            action = session.get(ScheduledAction, action_id)
            assert action is not None
            status, holder = action.status, action.claimed_by
            resumable = status == ActionStatus.RUNNING and resume and claim_is_stale(holder)
            if status != ActionStatus.PENDING and not resumable:
                return status
            claimed = session.execute(
                update(ScheduledAction)
                .where(
                    ScheduledAction.id == action_id,
                    ScheduledAction.status == status,
                    ScheduledAction.claimed_by.is_not_distinct_from(holder),
                )
                .values(
                    status=ActionStatus.RUNNING,
                    claimed_by=this_process(),
                    updated_at=self.clock(),
                    attempts=ScheduledAction.attempts + 1,
                )
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                return ActionStatus.RUNNING  # another process claimed it between the read and now
            session.refresh(action)
            account = session.get(Account, action.account_id)
            assert account is not None
            return ClaimedAction(
                action_id=action_id,
                phase=action.name,
                account_id=action.account_id,
                since=action.created_at,
                snapshot=stored_snapshot(account),
                suspended_at=account.suspended_at,
                legal_hold=State.LEGAL_HOLD.value in (account.state, account.resume_state),
            )
