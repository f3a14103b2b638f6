"""The approval gate: a phase the plan names in `approve` waits for a person.

When the runner is about to pick a queued phase, it asks `ApprovalGate.admits`. A
phase the plan asks approval for (`approve = ["delete"]`, and "suspend" above
`approve_suspend_over`) is admitted only once a person approved it (`lapse approve`,
the console); until then it stays pending and a waiting approval is recorded, which
the approval queue lists. Approval only lets the phase be picked: every safety check
(the payment guard, the tree rule, the deletion proof) still runs when it does.
Decisions are made by daemon.lifecycle.approvals.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from daemon.config.schema import PolicyConfig
from daemon.domain.clock import Clock
from daemon.domain.phases import Phase
from daemon.domain.states import ApprovalStatus, State
from daemon.store.models import Account, Approval, ScheduledAction

log = structlog.get_logger("lapse.approvals")

# The phases a plan may hold for approval (the `approve` option's values).
GATED_PHASES = frozenset({Phase.DELETE.value, Phase.SUSPEND.value})


def needs_approval(policy: PolicyConfig, phase: str, balance: Decimal, currency: str) -> bool:
    """Return whether `policy` asks a person to approve `phase` for an account owing
    `balance` in `currency`.

    A suspension waits only when "suspend" is in `approve` and the balance reaches the
    amount `approve_suspend_over` names for the currency (a currency not named, or an
    empty table, always waits).
    """
    if phase not in GATED_PHASES or phase not in policy.approve:
        return False
    if phase != Phase.SUSPEND.value or not policy.approve_suspend_over:
        return True
    threshold = policy.approve_suspend_over.get(currency.upper())
    return threshold is None or balance >= threshold


class ApprovalGate:
    """Tells the runner whether a queued phase may be picked, recording those that wait."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        clock: Clock,
        policy_for: Callable[[str], PolicyConfig],
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.policy_for = policy_for

    def admits(self, action_id: int) -> bool:
        """Return whether the queued action may run now: its phase needs no approval, or a
        person approved it. An action that needs one and has none gets a waiting approval
        (once); a rejected one is never admitted."""
        with self.sessions.begin() as session:
            return self.admits_in(session, action_id)

    def admits_in(self, session: Session, action_id: int) -> bool:
        """`admits`, inside `session`'s transaction (the worker pool's claim, which holds
        its lock while it picks): a waiting approval is recorded with the claim's commit."""
        action = session.get(ScheduledAction, action_id)
        if action is None or action.name not in GATED_PHASES:
            return True
        decision = session.scalar(select(Approval).where(Approval.action_id == action_id))
        if decision is not None:
            return decision.status is ApprovalStatus.APPROVED
        account = session.get(Account, action.account_id)
        if account is None or account.state == State.OPS_SUSPENDED:
            return True  # an operator's own suspension is decided already
        policy = self.policy_for(account.plan)
        if not needs_approval(policy, action.name, account.balance, account.currency):
            return True
        session.add(
            Approval(
                action_id=action_id,
                account_id=action.account_id,
                phase=action.name,
                status=ApprovalStatus.WAITING,
                requested_at=self.clock(),
            )
        )
        session.flush()
        log.warning("phase waits for approval", account=action.account_id, phase=action.name)
        return False
