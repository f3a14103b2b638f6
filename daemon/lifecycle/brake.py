"""The safety brake: a billing sync that would push far more accounts into dunning than
a normal day does is suspected, not obeyed.

When it trips, owing accounts are left where they are (no reminder, no suspension,
no deletion), queued suspend and delete phases wait, ops are alerted, and
everything stays so until `lapse brake release`. Payments still reactivate.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.orm import Session, sessionmaker

from daemon.config.schema import DaemonConfig
from daemon.domain.clock import Clock
from daemon.notices.alerts import OpsAlerts
from daemon.store.models import DaemonFlag

log = structlog.get_logger("lapse.brake")

FLAG = "brake"


class SafetyBrake:
    """Trips on an anomalous sync and holds until ops release it."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        config: DaemonConfig,
        clock: Clock,
        alerts: OpsAlerts | None = None,
    ) -> None:
        self.sessions = sessions
        self.config = config
        self.clock = clock
        self.alerts = alerts

    def status(self) -> dict[str, Any] | None:
        """Return the brake's record while it is engaged, else None."""
        return brake_status(self.sessions)

    def check(self, session: Session, entering: int, known: int, now: datetime) -> bool:
        """Decide, in the sync's transaction, whether this sync runs braked.

        `entering` is how many known accounts this sync would turn overdue, `known`
        how many accounts the state database knew before it. Returns True when the
        brake is (now) engaged. A release by ops lets exactly the next sync through.
        """
        gate = self.gate(session, now)
        if gate is not None:
            return gate
        if not self.trips(entering, known):
            return False
        self.engage(session, entering, known, now)
        return True

    def gate(self, session: Session, now: datetime) -> bool | None:
        """Say, before a sync counts anything, how the brake takes it: True when engaged
        (the sync runs braked), False when ops released it (this sync goes through as
        read, and the brake is idle again after it), None when the sync must be counted
        (see `trips`)."""
        flag = session.get(DaemonFlag, FLAG)
        if flag is not None and flag.value.get("state") == "engaged":
            return True
        if flag is not None and flag.value.get("state") == "released":
            flag.value = {**flag.value, "state": "idle"}
            flag.updated_at = now
            return False
        return None

    def trips(self, entering: int, known: int) -> bool:
        """Whether turning `entering` of `known` accounts overdue in one sync trips the brake."""
        return (
            entering >= self.config.brake_min_accounts
            and entering > self.config.brake_share * known
        )

    def engage(self, session: Session, entering: int, known: int, now: datetime) -> None:
        """Engage the brake in `session` for a sync that would turn `entering` of `known`
        accounts overdue, and alert ops."""
        flag = session.get(DaemonFlag, FLAG)
        limit = max(self.config.brake_min_accounts, self.config.brake_share * known)
        reason = (
            f"{entering} of {known} accounts would turn overdue in one sync "
            f"(the brake trips above {limit:.0f}): billing data suspected"
        )
        value = {
            "state": "engaged",
            "since": now.isoformat(),
            "reason": reason,
            "entering": entering,
            "known": known,
        }
        if flag is None:
            session.add(DaemonFlag(name=FLAG, value=value, updated_at=now))
        else:
            flag.value, flag.updated_at = value, now
        log.error("safety brake engaged", reason=reason)
        if self.alerts is not None:
            self.alerts.alert(
                "brake",
                None,
                reason + "; no lifecycle step is taken for owing accounts until "
                "`lapse brake release`",
                now,
            )

    def release(self, actor: str) -> dict[str, Any]:
        """Release the brake; the next sync is applied as read. Returns the record released.

        Raises ValueError when the brake is not engaged.
        """
        now = self.clock()
        with self.sessions.begin() as session:
            flag = session.get(DaemonFlag, FLAG)
            engaged = _engaged(session)
            if flag is None or engaged is None:
                raise ValueError("the safety brake is not engaged")
            flag.value = {
                **engaged,
                "state": "released",
                "released_by": actor,
                "released_at": now.isoformat(),
            }
            flag.updated_at = now
        log.warning("safety brake released", actor=actor)
        return engaged


def brake_status(sessions: sessionmaker[Session]) -> dict[str, Any] | None:
    """Return the brake's record (`since`, `reason`) while it is engaged, else None: what
    the brake's status and /metrics read, without the brake's config or alerts."""
    with sessions() as session:
        return _engaged(session)


def _engaged(session: Session) -> dict[str, Any] | None:
    flag = session.get(DaemonFlag, FLAG)
    if flag is None or flag.value.get("state") != "engaged":
        return None
    return dict(flag.value)
