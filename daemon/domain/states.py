"""Where an account stands in its lifecycle, and the groups of states the rules name."""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    """Where an account stands in its lifecycle."""

    ACTIVE = "active"
    OVERDUE = "overdue"
    REMINDED = "reminded"
    FINAL_NOTICE = "final-notice"
    SUSPENDED = "suspended"
    REMOVAL_WARNED = "removal-warned"
    DELETED = "deleted"
    # Set by the playbook runner when a phase failed on the host; ops resolve them.
    SUSPEND_FAILED = "suspend-failed"
    DELETE_FAILED = "delete-failed"
    # Side states: the clock stops while in them and resumes where it was.
    ON_HOLD = "on-hold"
    PAYMENT_PLAN = "payment-plan"
    EXEMPT = "exempt"
    LEGAL_HOLD = "legal-hold"
    # Suspended by an operator (`lapse suspend`): stays so, paid or not, until `lapse unsuspend`.
    OPS_SUSPENDED = "ops-suspended"


SIDE_STATES = frozenset(
    {State.ON_HOLD, State.PAYMENT_PLAN, State.EXEMPT, State.LEGAL_HOLD, State.OPS_SUSPENDED}
)
SUSPENDED_STATES = frozenset({State.SUSPENDED, State.REMOVAL_WARNED})
DUNNING_STATES = frozenset({State.OVERDUE, State.REMINDED, State.FINAL_NOTICE})
FAILED_STATES = frozenset({State.SUSPEND_FAILED, State.DELETE_FAILED})
