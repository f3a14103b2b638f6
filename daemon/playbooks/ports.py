"""What the playbook runner needs of the lifecycle, stated here so playbooks never import it.

The lifecycle sits above the playbooks in the pipeline: it queues the phases the
runner executes. The runner still reports back (a phase done, a phase failed, a
payment to act on), so it takes the lifecycle as this protocol, which
`daemon.lifecycle.engine.LifecycleEngine` satisfies; the composition root passes
the engine in.
"""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy.orm import Session, sessionmaker

from daemon.domain.clock import Clock
from daemon.domain.states import State


class BrakeStatus(Protocol):
    """The safety brake as the runner sees it: engaged or not."""

    def status(self) -> dict[str, Any] | None:
        """Return the brake's record while it is engaged, else None."""


class Lifecycle(Protocol):
    """The lifecycle's state database, clock, brake and the four reports a phase makes."""

    @property
    def sessions(self) -> sessionmaker[Session]:
        """The state database's session factory."""

    @property
    def clock(self) -> Clock:
        """The lifecycle's clock, real or virtual."""

    @property
    def brake(self) -> BrakeStatus:
        """The safety brake."""

    def wake(self, account_id: str, actor: str = ...) -> object:
        """Evaluate one account now with a fresh billing read. Raises BillingError."""

    def mark(self, account_id: str, state: State, reason: str, actor: str) -> None:
        """Record that the hosts put the account in `state`. Raises UnknownAccountError."""

    def phase_done(self, action_id: int) -> None:
        """Record the phase `action_id` done, with the notice its success makes true."""

    def note(self, account_id: str, reason: str, details: dict[str, Any], actor: str) -> None:
        """Append an event that records something done without a change of state."""
