"""What the runner knows about each phase: the account states it may go on in, whether
its host work starts with the tree check, and the state a failure leaves behind.

Keyed by phase name: a phase comes out of the state database as its name, and a
`Phase` is equal to (and hashes as) its name.
"""

from __future__ import annotations

from daemon.domain.phases import Phase
from daemon.domain.states import SUSPENDED_STATES, State

# The account states in which each phase may go on; anything else means a payment
# (or an operator) changed the account's course while the run was under way. A
# phase not named here (unsuspend, restore, verify) is not stopped by a payment.
PHASE_STATES: dict[str, set[State]] = {
    Phase.SUSPEND: {*SUSPENDED_STATES, State.OPS_SUSPENDED},
    Phase.DELETE: {State.DELETED},
}
# Phases whose host work starts with the tree check of each docroot.
TREE_CHECKED: tuple[str, ...] = (Phase.SUSPEND, Phase.DELETE)
# The state a failed phase leaves the account in, for ops to resolve (`lapse retry`).
FAILED_STATE: dict[str, State] = {
    Phase.SUSPEND: State.SUSPEND_FAILED,
    Phase.DELETE: State.DELETE_FAILED,
}
