"""Running playbook phases: step by step, recorded, resumable, stopped by a payment.

Each queued phase (a scheduled action) becomes one playbook run per service
host. Every step is recorded before and after it runs, so after a crash the run
resumes at its first unfinished step (steps are idempotent). A failed step stops
the run, alerts ops and marks the account suspend-failed or delete-failed; later
steps never run. Right before the first step that disables or deletes anything,
the balance is read afresh from billing: a paid account is not touched. A
payment recorded while a suspend or delete run goes on (a webhook, or a sync that
reactivated the account) stops it at the next step boundary, or within seconds
inside a long step (a backup); the reactivation that follows undoes what was done
(invariant 2, see daemon.playbooks.payment_guard). Right before the first step that
deletes, the backup the deletion relies on is proven (daemon.backup.gate). Before
the first step of a suspend or delete phase, each docroot is checked on its host by
the tree rule (daemon.backup.tree): a failure fails the phase before it touched
anything.

`PlaybookRunner` is the front the daemon and the CLI use; the work is shared out:
picking and claiming actions (action_queue), running one phase's steps on one host
(phase_steps, with planning, contexts, guards and run_log), ending a phase that did
not finish (endings), and the deletion record (deletion_record).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path

import structlog

from daemon.backup.gate import DeletionGate
from daemon.backup.service import BackupService
from daemon.billing.base import BillingSource
from daemon.config.schema import BrandConfig, HostConfig, PolicyConfig
from daemon.domain.phases import OperatorPhase, Phase
from daemon.domain.snapshot import Service
from daemon.domain.states import ActionStatus, State
from daemon.notices.alerts import OpsAlerts
from daemon.playbooks.action_queue import ActionQueue, ClaimedAction
from daemon.playbooks.approvals import ApprovalGate
from daemon.playbooks.contexts import StepContexts
from daemon.playbooks.deletion_record import DeletionRecords
from daemon.playbooks.endings import PhaseEndings
from daemon.playbooks.errors import (
    STEP_ERRORS,
    ClaimLostError,
    RunCancelledError,
    RunInterruptedError,
)
from daemon.playbooks.guards import PhaseGuards
from daemon.playbooks.library import PlaybookLibrary
from daemon.playbooks.pages import MaintenancePages
from daemon.playbooks.payment_guard import PaymentGuard
from daemon.playbooks.phase_steps import PhaseSteps
from daemon.playbooks.ports import Lifecycle
from daemon.playbooks.run_log import RunLog
from daemon.playbooks.schema import Playbook
from daemon.playbooks.steps import StepContext
from daemon.transport import Transports

log = structlog.get_logger("lapse.playbooks")


class PlaybookRunner:
    """Executes queued playbook phases: one at a time for `run_pending` and the
    commands, side by side when a worker pool (daemon.runtime.phase_pool) hands each of
    its workers a claimed phase through `run_claimed`.

    Takes the lifecycle (through daemon.playbooks.ports), billing, the backup
    service, the hosts' transports and the ops alerts, and of the config only what
    it uses: the hosts, the brand the templates show, the policy of a plan (to tell
    whether a fresh balance is still owed) and where operators keep their playbooks
    and maintenance pages.
    """

    def __init__(
        self,
        lifecycle: Lifecycle,
        billing: BillingSource,
        backups: BackupService,
        transports: Transports,
        alerts: OpsAlerts | None = None,
        *,
        hosts: Mapping[str, HostConfig],
        brand: BrandConfig,
        policy_for: Callable[[str], PolicyConfig],
        playbooks_dir: Path | None = None,
        pages_dir: Path | None = None,
        notice_templates_dir: Path | None = None,
    ) -> None:
        self.lifecycle = lifecycle
        self.hosts = hosts
        self.sessions = lifecycle.sessions
        self.clock = lifecycle.clock
        # Set on SIGTERM: the step under way finishes, the run resumes at the next start.
        self.stop_requested = threading.Event()
        self.library = PlaybookLibrary(playbooks_dir)
        self.payments = PaymentGuard(lifecycle)
        self.approvals = ApprovalGate(self.sessions, self.clock, policy_for)
        # The worker pool's claims ask the approval gate too, as `execute` does.
        self.queue = ActionQueue(
            self.sessions, self.clock, lifecycle.brake, admits=self.approvals.admits_in
        )
        self.endings = PhaseEndings(self.sessions, self.clock, lifecycle, alerts)
        self.deletions = DeletionRecords(self.sessions, lifecycle, backups)
        run_log = RunLog(self.sessions, self.clock)
        gate = DeletionGate(backups, alerts)
        self.guards = PhaseGuards(self.sessions, billing, policy_for, transports, gate, run_log)
        # The pages are written in the notices' languages, the operator's catalogs included.
        pages = MaintenancePages(
            pages_dir, templates_dir=notice_templates_dir, language=brand.language
        )
        self.contexts = StepContexts(
            hosts, brand, transports, backups, pages, self.clock, self.payments, alerts
        )
        self.steps = PhaseSteps(
            self.sessions,
            hosts,
            self.library,
            self.contexts,
            self.guards,
            self.payments,
            run_log,
            self.stop_requested,
        )

    def run_pending(self) -> int:
        """Run every due playbook action, oldest first, including ones queued while this
        runs (a payment during a suspension queues its undo) and ones whose process
        crashed or stopped; an action another live process runs is left to it.
        Returns how many ran."""
        seen: set[int] = set()
        while not self.stop_requested.is_set():
            fresh = [action_id for action_id in self.queue.due() if action_id not in seen]
            if not fresh:
                break
            seen.add(fresh[0])
            self.execute(fresh[0], resume=True)
        return len(seen)

    def run_queued(self, account_id: str) -> list[tuple[str, ActionStatus]]:
        """Run the account's pending playbook actions now, oldest first (an operator's
        command that should not wait for the next sync).

        Returns (phase, final status) for each; an action another process claimed
        first is reported with the status it has.
        """
        queued = self.queue.queued(account_id)
        return [(phase, self.execute(action_id)) for action_id, phase in queued]

    def run_phase(self, account_id: str, phase: str, backup_id: str | None = None) -> ActionStatus:
        """Queue and run `phase` ('verify' or 'restore') for the account now, as ops ask;
        return its final status. `backup_id` is the backup a restore phase restores
        (unset: the newest verified one). Raises what queue_phase raises."""
        action_id = self.queue_phase(account_id, phase)
        self.contexts.chosen_backup = backup_id if phase == OperatorPhase.RESTORE else None
        try:
            return self.execute(action_id)
        finally:
            self.contexts.chosen_backup = None

    def queue_phase(self, account_id: str, phase: str) -> int:
        """Queue `phase` ('verify' or 'restore') for the account, for the daemon to run;
        return the action's id. Raises UnknownAccountError, or ValueError for a phase
        that only the lifecycle may start (suspend, unsuspend, delete)."""
        if phase not in tuple(OperatorPhase):
            raise ValueError(
                f"the {phase} phase follows the lifecycle; use lapse hold/release (and the "
                "billing system) to change an account's course"
            )
        return self.queue.add(account_id, phase)

    def retry(self, account_id: str, actor: str) -> ActionStatus:
        """Run the account's failed suspend or delete phase again from its failed step;
        return the status. Raises what queue_retry raises."""
        return self.execute(self.queue_retry(account_id, actor))

    def queue_retry(self, account_id: str, actor: str) -> int:
        """Make the account's failed phase pending again, to resume at its failed step,
        putting the account back in the state the phase belongs to; return the action's
        id. Raises UnknownAccountError, or ValueError when nothing failed.
        """
        action_id, phase, state = self.queue.reopen_failed(account_id)
        back_to = {
            State.SUSPEND_FAILED.value: State.SUSPENDED,
            State.DELETE_FAILED.value: State.DELETED,
        }
        if state in back_to:
            self.lifecycle.mark(account_id, back_to[state], f"{phase} retried", actor)
        return action_id

    def execute(self, action_id: int, resume: bool = False) -> ActionStatus:
        """Run one queued phase on every host of the account; return its final status
        ('done', 'failed' or 'cancelled'; 'running' when stopped for shutdown or run by
        another process; 'pending' while it waits in the approval queue).

        The action is claimed first (daemon.playbooks.action_queue), so two processes
        never run it at once; `resume` also claims an action left running by a process
        that is gone.
        """
        if not self.approvals.admits(action_id):
            return ActionStatus.PENDING  # in the approval queue (daemon.playbooks.approvals)
        claimed = self.queue.claim(action_id, resume)
        if isinstance(claimed, ActionStatus):
            return claimed
        return self.run_claimed(claimed)

    def run_claimed(self, claimed: ClaimedAction) -> ActionStatus:
        """Run a phase this process claimed (by `execute`, or a worker pool's
        `ActionQueue.claim_next`) on every host of the account; return its final status
        as `execute` does."""
        action_id = claimed.action_id
        phase, account_id = claimed.phase, claimed.account_id
        log.info("playbook phase started", account=account_id, phase=phase, action=action_id)
        self.guards.forget_proof(action_id)  # a proof is made afresh by every execution
        holds = partial(self.queue.holds, claimed)
        try:
            if phase == Phase.DELETE:
                self.guards.check_deletion_allowed(
                    account_id, claimed.suspended_at, claimed.legal_hold
                )
            for service in claimed.snapshot.services if claimed.snapshot else ():
                self.steps.run(action_id, account_id, phase, service, claimed.since, holds)
            if not holds():  # the outcome is the new holder's to record
                raise ClaimLostError(f"action {action_id} was taken over by another daemon")
        except ClaimLostError as lost:
            return self.endings.lost(action_id, account_id, phase, str(lost))
        except RunInterruptedError:
            return self.endings.paused(action_id, account_id, phase, claimed.owner)
        except RunCancelledError as stop:
            return self.endings.cancelled(action_id, account_id, phase, str(stop))
        except STEP_ERRORS as error:
            return self.endings.failed(action_id, account_id, phase, str(error))
        # Done, with the client notice the success makes true, in one transaction.
        self.lifecycle.phase_done(action_id)
        if phase == Phase.DELETE:
            self.deletions.record(account_id, action_id, claimed.suspended_at)
        log.info("playbook phase done", account=account_id, phase=phase, action=action_id)
        return ActionStatus.DONE

    def preview_context(
        self, account_id: str, phase: str, service: Service, playbook: Playbook
    ) -> StepContext:
        """The context a step of `phase` would get, for a dry-run preview."""
        return self.contexts.preview(account_id, phase, service, playbook)
