"""The approval queue: what waits for a person, and their decisions.

The runner leaves a phase the plan asks approval for pending and records a waiting
approval (daemon.playbooks.approvals). Here a person decides: `approve` lets the
runner pick the phase (which still passes every safety check when it runs);
`reject` cancels it and puts the account on an ops hold, back in the state the
transition that queued the phase came from (daemon.policy.commands.reject). Each
decision is written with the person's name, and so enters the audit log
(daemon.store.audit). Approvals that wait longer than the plan's
`approval_alert_after` alert ops once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from daemon.config.schema import PolicyConfig
from daemon.domain.clock import Clock
from daemon.domain.errors import LapseError, UnknownAccountError
from daemon.domain.states import ActionStatus, ApprovalStatus, State
from daemon.lifecycle.engine import LifecycleEngine
from daemon.notices.alerts import OpsAlerts
from daemon.policy import commands
from daemon.store.models import Account, Approval, Event, ScheduledAction

log = structlog.get_logger("lapse.approvals")


class NothingToDecideError(LapseError, ValueError):
    """The account has no phase waiting for approval."""


@dataclass(frozen=True)
class WaitingApproval:
    """A phase in the approval queue, with what a person needs to decide on it."""

    account_id: str
    phase: str
    requested_at: datetime
    plan: str
    state: str
    balance: Decimal
    currency: str


@dataclass(frozen=True)
class ApprovalRecord:
    """One approval of an account, waiting or decided."""

    phase: str
    status: ApprovalStatus
    requested_at: datetime
    decided_at: datetime | None
    decided_by: str | None
    reason: str | None


class Approvals:
    """Lists the approval queue and records the decisions on it."""

    def __init__(
        self,
        lifecycle: LifecycleEngine,
        clock: Clock,
        policy_for: Callable[[str], PolicyConfig],
        alerts: OpsAlerts | None = None,
    ) -> None:
        self.sessions: sessionmaker[Session] = lifecycle.sessions
        self.lifecycle = lifecycle
        self.clock = clock
        self.policy_for = policy_for
        self.alerts = alerts

    def waiting(self) -> list[WaitingApproval]:
        """Every phase waiting for approval, oldest request first."""
        with self.sessions() as session:
            rows = session.execute(
                select(Approval, Account)
                .join(Account, Account.id == Approval.account_id)
                .where(Approval.status == ApprovalStatus.WAITING)
                .order_by(Approval.requested_at, Approval.id)
            ).all()
            return [
                WaitingApproval(
                    approval.account_id,
                    approval.phase,
                    approval.requested_at,
                    account.plan,
                    account.state,
                    account.balance,
                    account.currency,
                )
                for approval, account in rows
            ]

    def of(self, account_id: str) -> list[ApprovalRecord]:
        """The account's approvals, newest first."""
        with self.sessions() as session:
            rows = session.scalars(
                select(Approval)
                .where(Approval.account_id == account_id)
                .order_by(Approval.id.desc())
            )
            return [
                ApprovalRecord(
                    row.phase,
                    row.status,
                    row.requested_at,
                    row.decided_at,
                    row.decided_by,
                    row.reason,
                )
                for row in rows
            ]

    def approve(self, account_id: str, actor: str) -> str:
        """Approve the account's waiting phase; return the phase. The runner picks it at its
        next turn. Raises NothingToDecideError, or CommandRefusedError when billing has
        reported the account paid since (a rejection then reactivates it)."""
        now = self.clock()
        with self.sessions.begin() as session:
            approval = _waiting(session, account_id)
            account = session.get(Account, account_id)
            assert account is not None
            if account.balance < self.policy_for(account.plan).min_balance:
                # Approved, the phase would stop at its payment check and leave the
                # account's record at `deleted`, which the lifecycle treats as final.
                raise commands.CommandRefusedError(
                    f"{account_id} has been paid since its {approval.phase} was queued "
                    f"({account.balance} {account.currency} owed): reject it, and the "
                    "hold reactivates the account"
                )
            approval.status, approval.decided_at = ApprovalStatus.APPROVED, now
            approval.decided_by = actor
            phase = approval.phase
        log.warning("phase approved", account=account_id, phase=phase, actor=actor)
        return phase

    def reject(self, account_id: str, actor: str, reason: str) -> str:
        """Reject the account's waiting phase: the account is put on an ops hold and the
        phase cancelled. Returns the phase. Raises NothingToDecideError, or
        CommandRefusedError when the account has moved on meanwhile."""
        with self.sessions() as session:
            approval = _waiting(session, account_id)
            action = session.get(ScheduledAction, approval.action_id)
            assert action is not None
            queued_by = session.get(Event, action.event_id) if action.event_id else None
            back_to = State(queued_by.from_state) if queued_by else State.REMOVAL_WARNED
            phase, approval_id = approval.phase, approval.id
        # The hold first: while it is recorded the phase still waits, never admitted.
        self.lifecycle.apply_command(
            account_id, commands.reject, actor, phase=phase, back_to=back_to, reason=reason
        )
        now = self.clock()
        with self.sessions.begin() as session:
            decided = session.get(Approval, approval_id)
            assert decided is not None
            decided.status, decided.decided_at = ApprovalStatus.REJECTED, now
            decided.decided_by, decided.reason = actor, reason
            action = session.get(ScheduledAction, decided.action_id)
            assert action is not None
            action.status, action.updated_at = ActionStatus.CANCELLED, now
            action.error = f"rejected by {actor}: {reason}"
        log.warning("phase rejected", account=account_id, phase=phase, actor=actor)
        return phase

    def alert_overdue(self) -> list[str]:
        """Alert ops (once each) about approvals waiting longer than their plan's
        `approval_alert_after`; return the accounts alerted about."""
        now = self.clock()
        alerted: list[str] = []
        with self.sessions.begin() as session:
            rows = session.execute(
                select(Approval, Account.plan)
                .join(Account, Account.id == Approval.account_id)
                .where(Approval.status == ApprovalStatus.WAITING, Approval.alerted_at.is_(None))
            ).all()
            for approval, plan in rows:
                if now - approval.requested_at < self.policy_for(plan).approval_alert_after:
                    continue
                approval.alerted_at = now
                alerted.append(approval.account_id)
                if self.alerts is not None:
                    self.alerts.alert(
                        "approval-waiting",
                        approval.account_id,
                        f"the {approval.phase} phase has waited for approval since "
                        f"{approval.requested_at.isoformat()}: lapse approve / lapse reject",
                        now,
                    )
        return alerted


def _waiting(session: Session, account_id: str) -> Approval:
    if session.get(Account, account_id) is None:
        raise UnknownAccountError(f"no account {account_id!r} in the state database")
    approval = session.scalar(
        select(Approval).where(
            Approval.account_id == account_id, Approval.status == ApprovalStatus.WAITING
        )
    )
    if approval is None:
        raise NothingToDecideError(f"{account_id} has no phase waiting for approval")
    return approval
