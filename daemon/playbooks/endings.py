"""How a phase that did not finish ends: paused for shutdown, cancelled by a payment or
a change of course, taken over by another daemon, or failed (the account marked, ops
alerted)."""

from __future__ import annotations

import structlog
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from daemon.domain.clock import Clock
from daemon.domain.states import ActionStatus, RunStatus
from daemon.notices.alerts import OpsAlerts
from daemon.playbooks.phase_rules import FAILED_STATE
from daemon.playbooks.ports import Lifecycle
from daemon.store.models import PlaybookRun, ScheduledAction

log = structlog.get_logger("lapse.playbooks")


class PhaseEndings:
    """Records a phase paused, cancelled or failed, and tells whom it concerns; each
    returns the action's final status."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        clock: Clock,
        lifecycle: Lifecycle,
        alerts: OpsAlerts | None = None,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.lifecycle = lifecycle
        self.alerts = alerts

    def paused(self, action_id: int, account_id: str, phase: str, owner: str) -> ActionStatus:
        """Release `owner`'s claim on an action stopped for shutdown; return 'running'."""
        # Paused, not abandoned: releasing the claim lets the next runner (after a
        # restart, or a reload in this same process) resume the phase. Only this
        # owner's claim: one another daemon took over meanwhile stays that daemon's.
        with self.sessions.begin() as session:
            session.execute(
                update(ScheduledAction)
                .where(ScheduledAction.id == action_id, ScheduledAction.claimed_by == owner)
                .values(claimed_by=None, lease_until=None)
            )
        log.info("playbook phase paused for shutdown", account=account_id, phase=phase)
        return ActionStatus.RUNNING

    def lost(self, action_id: int, account_id: str, phase: str, why: str) -> ActionStatus:
        """Leave an action another daemon took over to it, writing nothing; return
        'running' (it runs there)."""
        log.error(
            "playbook phase stopped: another daemon took it over after this one's lease ran "
            "out; it resumes there from the step it reached",
            account=account_id,
            phase=phase,
            action=action_id,
            reason=why,
        )
        return ActionStatus.RUNNING

    def cancelled(self, action_id: int, account_id: str, phase: str, reason: str) -> ActionStatus:
        """Record the action cancelled for `reason` and evaluate the account again (the
        payment that stopped it leads to reactivation); return 'cancelled'."""
        self._finish_action(action_id, ActionStatus.CANCELLED, reason)
        log.info("playbook phase stopped", account=account_id, phase=phase, reason=reason)
        # Re-evaluate now: the payment that stopped the run leads to reactivation.
        self.lifecycle.wake(account_id, actor="runner")
        return ActionStatus.CANCELLED

    def failed(self, action_id: int, account_id: str, phase: str, error: str) -> ActionStatus:
        """Record the action failed, mark the account suspend-failed or delete-failed,
        alert ops; return 'failed'."""
        self._finish_action(action_id, ActionStatus.FAILED, error)
        log.error("playbook phase failed", account=account_id, phase=phase, error=error)
        failed_state = FAILED_STATE.get(phase)
        if failed_state is not None:
            self.lifecycle.mark(account_id, failed_state, f"{phase} failed: {error}", "runner")
        if self.alerts is not None:
            self.alerts.alert(f"{phase}-failed", account_id, error, self.clock())
        return ActionStatus.FAILED

    def _finish_action(self, action_id: int, status: ActionStatus, error: str | None) -> None:
        with self.sessions.begin() as session:
            action = session.get(ScheduledAction, action_id)
            assert action is not None
            action.status, action.error, action.updated_at = status, error, self.clock()
            if status == ActionStatus.CANCELLED:
                for run in session.scalars(
                    select(PlaybookRun).where(
                        PlaybookRun.action_id == action_id, PlaybookRun.status == RunStatus.RUNNING
                    )
                ):
                    run.status, run.error, run.finished_at = (
                        RunStatus.CANCELLED,
                        error,
                        self.clock(),
                    )
