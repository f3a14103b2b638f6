"""What a running phase asks between and inside its steps: was a payment recorded?

A suspend or delete phase stops for a payment at any moment (invariant 2). Before
every step it settles the account's pending payment events: the lifecycle reads
billing afresh and, if the account is paid, reactivates it (queueing the undo);
the runner then sees the account left the phase's states and stops. Inside a long
step (a backup), the same question is asked every few seconds through the step
context's stop check, which only looks and never acts.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from sqlalchemy import select

from daemon.billing.base import BillingError
from daemon.playbooks.ports import Lifecycle
from daemon.playbooks.steps import StepFailedError
from daemon.store import payment_events as payments
from daemon.store.models import Account


class PaymentGuard:
    """Looks for, and acts on, payment events recorded while a phase runs."""

    def __init__(self, lifecycle: Lifecycle) -> None:
        self.lifecycle = lifecycle
        self.sessions = lifecycle.sessions

    def stop_check(self, account_id: str, allowed: Collection[str]) -> Callable[[], str | None]:
        """Return a check for a long step: it gives why the phase must stop now (a payment
        event is pending, or the account left the `allowed` states), or None."""

        def check() -> str | None:
            pending = payments.pending_keys(self.sessions, account_id)
            if pending:
                return f"payment event {pending[0]} recorded"
            with self.sessions() as session:
                state = session.scalar(select(Account.state).where(Account.id == account_id))
            if state not in allowed:
                return f"the account is now {state}"
            return None

        return check

    def settle(self, account_id: str) -> bool:
        """Act on the account's pending payment events: evaluate it with a fresh billing
        read (a paid account is reactivated), then mark those events handled.

        Returns whether there were any. Raises StepFailedError when billing cannot be
        read: no further step runs on an unconfirmed balance, and the events stay
        pending for the scheduler's next look.
        """
        keys = payments.pending_keys(self.sessions, account_id)
        if not keys:
            return False
        try:
            self.lifecycle.wake(account_id, actor="payment")
        except BillingError as error:
            raise StepFailedError(
                f"payment event {keys[0]} arrived and billing cannot be read to confirm it: "
                f"{error}; nothing more is done until it can"
            ) from error
        payments.mark_handled(self.sessions, keys, self.lifecycle.clock())
        return True
