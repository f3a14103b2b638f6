"""The policy engine: a pure function from (snapshot, record, policy, now) to a decision."""

from __future__ import annotations

from datetime import datetime

from daemon.config.schema import PolicyConfig
from daemon.domain.snapshot import AccountSnapshot
from daemon.domain.states import State
from daemon.policy import rules
from daemon.policy.model import Action, Decision, LifecycleRecord
from daemon.policy.rules import accept_final_notice

__all__ = [
    "Action",
    "Decision",
    "LifecycleRecord",
    "accept_final_notice",
    "decide",
]

_RULES = (rules.ops_suspension, rules.holds, rules.exemption, rules.payment, rules.payment_plan)


def decide(
    snapshot: AccountSnapshot | None,
    record: LifecycleRecord,
    policy: PolicyConfig,
    now: datetime,
) -> Decision:
    """Decide the next step for one account.

    Takes the latest billing snapshot (None when billing no longer lists the
    account), the account's lifecycle record, its plan's policy and the
    current UTC time. Returns one Decision: at most one transition. Callers
    apply it and ask again until nothing changes, so a catch-up after downtime
    moves one recorded step at a time. Raises nothing; pure.
    """
    if record.state is State.DELETED:
        return rules.stay(record, "deleted accounts are final")
    if record.state is State.DELETE_FAILED:
        return rules.stay(record, "deletion failed on the host; waiting for ops (lapse retry)")
    if snapshot is None:
        return rules.stay(record, "not listed by the billing source; nothing done")
    for rule in _RULES:
        decision = rule(snapshot, record, policy, now)
        if decision is not None:
            return decision
    return rules.timeline(snapshot, record, policy, now)
