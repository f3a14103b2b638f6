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
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import select, update

from daemon.backup.errors import BackupError
from daemon.backup.gate import DeletionGate
from daemon.backup.proof import proof_for_action
from daemon.backup.service import BackupService
from daemon.backup.stores.base import BackupStoreError
from daemon.backup.tree import check_account_tree
from daemon.billing.base import BillingError, BillingSource
from daemon.config.load import ConfigError
from daemon.config.schema import BrandConfig, Config, HostConfig
from daemon.domain.errors import LapseError, UnknownAccountError
from daemon.domain.snapshot import Service
from daemon.domain.states import SUSPENDED_STATES, ActionStatus, RunStatus, State, StepStatus
from daemon.notices.alerts import OpsAlerts
from daemon.playbooks.claims import claim_is_stale, this_process
from daemon.playbooks.library import PlaybookLibrary
from daemon.playbooks.pages import MaintenancePages
from daemon.playbooks.payment_guard import PaymentGuard
from daemon.playbooks.ports import Lifecycle
from daemon.playbooks.schema import Playbook, StepSpec
from daemon.playbooks.steps import (
    STEP_TYPES,
    StepCancelledError,
    StepContext,
    StepFailedError,
    StepOutcome,
)
from daemon.playbooks.templating import TemplateError, evaluate
from daemon.policy.rules import owes
from daemon.store.models import Account, PlaybookRun, ScheduledAction, StepRecord
from daemon.store.records import stored_snapshot
from daemon.transport import CommandError, TransportError, Transports

log = structlog.get_logger("lapse.playbooks")

_STEP_ERRORS = (
    StepFailedError,
    TemplateError,
    TransportError,
    CommandError,
    BackupError,
    BackupStoreError,
    ConfigError,
)
# The account states in which each phase may go on; anything else means a payment
# (or an operator) changed the account's course while the run was under way.
_PHASE_STATES = {
    "suspend": {*SUSPENDED_STATES, State.OPS_SUSPENDED},
    "delete": {State.DELETED},
}
# Phases whose host work starts with the tree check of each docroot.
_TREE_CHECKED = ("suspend", "delete")
_FAILED_STATE = {"suspend": State.SUSPEND_FAILED, "delete": State.DELETE_FAILED}


class RunInterruptedError(LapseError):
    """The daemon is stopping: the run ends after its current step and resumes at start."""


class RunCancelledError(LapseError):
    """The run must stop without failing: the account was paid or changed course."""


@dataclass(frozen=True)
class PlannedStep:
    """One step of a run as planned: the spec to run, and whether it is an undo."""

    spec: StepSpec
    undo_of: int | None = None  # the suspend step record this undoes


class PlaybookRunner:
    """Executes queued playbook phases, one at a time."""

    def __init__(
        self,
        config: Config,
        lifecycle: Lifecycle,
        billing: BillingSource,
        backups: BackupService,
        transports: Transports,
        alerts: OpsAlerts | None = None,
    ) -> None:
        self.config = config
        self.lifecycle = lifecycle
        self.sessions = lifecycle.sessions
        self.clock = lifecycle.clock
        self.billing = billing
        self.backups = backups
        self.transports = transports
        self.alerts = alerts
        # Set on SIGTERM: the step under way finishes, the run resumes at the next start.
        self.stop_requested = threading.Event()
        self.library = PlaybookLibrary(config.playbooks_dir)
        self.pages = MaintenancePages(config.maintenance_pages_dir)
        self.gate = DeletionGate(backups, alerts)
        self._proven: set[int] = set()  # delete actions proven in this execution
        self.payments = PaymentGuard(lifecycle)

    def run_pending(self) -> int:
        """Run every due playbook action, oldest first, including ones queued while this
        runs (a payment during a suspension queues its undo) and ones whose process
        crashed or stopped; an action another live process runs is left to it.
        Returns how many ran."""
        seen: set[int] = set()
        while not self.stop_requested.is_set():
            with self.sessions() as session:
                due = session.scalars(
                    select(ScheduledAction.id)
                    .where(
                        ScheduledAction.kind == "playbook",
                        ScheduledAction.status.in_((ActionStatus.PENDING, ActionStatus.RUNNING)),
                        ScheduledAction.due_at <= self.clock(),
                    )
                    .order_by(ScheduledAction.id)
                ).all()
            if self.lifecycle.brake.status() is not None:
                due = self._unbraked(due)
            fresh = [action_id for action_id in due if action_id not in seen]
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
        with self.sessions() as session:
            queued = session.execute(
                select(ScheduledAction.id, ScheduledAction.name)
                .where(
                    ScheduledAction.account_id == account_id,
                    ScheduledAction.kind == "playbook",
                    ScheduledAction.status == ActionStatus.PENDING,
                )
                .order_by(ScheduledAction.id)
            ).all()
        return [(phase, self.execute(action_id)) for action_id, phase in queued]

    def _unbraked(self, due: list[int] | Sequence[int]) -> list[int]:
        """The actions that may run while the safety brake holds: not suspend or delete."""
        with self.sessions() as session:
            held = set(
                session.scalars(
                    select(ScheduledAction.id).where(
                        ScheduledAction.id.in_(list(due)),
                        ScheduledAction.name.in_(("suspend", "delete")),
                    )
                )
            )
        if held:
            log.warning("safety brake holds destructive phases", actions=sorted(held))
        return [action_id for action_id in due if action_id not in held]

    def run_phase(self, account_id: str, phase: str) -> ActionStatus:
        """Queue and run `phase` ('verify' or 'restore') for the account now, as ops ask;
        return its final status. Raises UnknownAccountError, or ValueError for a phase
        that only the lifecycle may start (suspend, unsuspend, delete)."""
        if phase not in ("verify", "restore"):
            raise ValueError(
                f"the {phase} phase follows the lifecycle; use lapse hold/release (and the "
                "billing system) to change an account's course"
            )
        now = self.clock()
        with self.sessions.begin() as session:
            if session.get(Account, account_id) is None:
                raise UnknownAccountError(f"no account {account_id!r} in the state database")
            action = ScheduledAction(
                account_id=account_id,
                kind="playbook",
                name=phase,
                status=ActionStatus.PENDING,
                due_at=now,
                created_at=now,
                updated_at=now,
                attempts=0,
            )
            session.add(action)
            session.flush()
            action_id = action.id
        return self.execute(action_id)

    def retry(self, account_id: str, actor: str) -> ActionStatus:
        """Run the account's failed suspend or delete phase again from its failed step,
        putting the account back in the state the phase belongs to; return the status.

        Raises UnknownAccountError, or ValueError when nothing failed.
        """
        with self.sessions.begin() as session:
            account = session.get(Account, account_id)
            if account is None:
                raise UnknownAccountError(f"no account {account_id!r} in the state database")
            action = session.scalars(
                select(ScheduledAction)
                .where(
                    ScheduledAction.account_id == account_id,
                    ScheduledAction.kind == "playbook",
                    ScheduledAction.status == ActionStatus.FAILED,
                )
                .order_by(ScheduledAction.id.desc())
            ).first()
            if action is None:
                raise ValueError(f"{account_id} has no failed playbook phase to retry")
            action.status, action.error = ActionStatus.PENDING, None
            action_id, phase, state = action.id, action.name, account.state
            for run in session.scalars(
                select(PlaybookRun).where(
                    PlaybookRun.action_id == action_id, PlaybookRun.status == RunStatus.FAILED
                )
            ):
                run.status = RunStatus.RUNNING
                for record in session.scalars(
                    select(StepRecord).where(
                        StepRecord.run_id == run.id, StepRecord.status == StepStatus.FAILED
                    )
                ):
                    record.status = StepStatus.PENDING
        back_to = {
            State.SUSPEND_FAILED.value: State.SUSPENDED,
            State.DELETE_FAILED.value: State.DELETED,
        }
        if state in back_to:
            self.lifecycle.mark(account_id, back_to[state], f"{phase} retried", actor)
        return self.execute(action_id)

    def execute(self, action_id: int, resume: bool = False) -> ActionStatus:
        """Run one queued phase on every host of the account; return its final status
        ('done', 'failed' or 'cancelled'; 'running' when stopped for shutdown or run by
        another process).

        The action is claimed with one conditional update naming this process, so two
        processes (the daemon and an operator's command) never run it at once;
        `resume` also claims an action left running by a process that is gone.
        """
        with self.sessions.begin() as session:
            action = session.get(ScheduledAction, action_id)
            assert action is not None
            status, holder = action.status, action.claimed_by
            resumable = status == ActionStatus.RUNNING and resume and claim_is_stale(holder)
            if status != ActionStatus.PENDING and not resumable:
                return status
            claimed = session.execute(
                update(ScheduledAction)
                .where(
                    ScheduledAction.id == action_id,
                    ScheduledAction.status == status,
                    ScheduledAction.claimed_by.is_not_distinct_from(holder),
                )
                .values(
                    status=ActionStatus.RUNNING,
                    claimed_by=this_process(),
                    updated_at=self.clock(),
                    attempts=ScheduledAction.attempts + 1,
                )
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                return ActionStatus.RUNNING  # another process claimed it between the read and now
            session.refresh(action)
            account = session.get(Account, action.account_id)
            assert account is not None
            snapshot = stored_snapshot(account)
            phase, account_id, since = action.name, action.account_id, action.created_at
            suspended_at = account.suspended_at
            legal_hold = State.LEGAL_HOLD.value in (account.state, account.resume_state)
        log.info("playbook phase started", account=account_id, phase=phase, action=action_id)
        self._proven.discard(action_id)  # a proof is made afresh by every execution
        try:
            if phase == "delete":
                self._check_deletion_allowed(account_id, suspended_at, legal_hold)
            for service in snapshot.services if snapshot else ():
                self._run_service(action_id, account_id, phase, service, since)
        except RunInterruptedError:
            # Paused, not abandoned: releasing the claim lets the next runner (after a
            # restart, or a reload in this same process) resume the phase.
            with self.sessions.begin() as session:
                session.execute(
                    update(ScheduledAction)
                    .where(ScheduledAction.id == action_id)
                    .values(claimed_by=None)
                )
            log.info("playbook phase paused for shutdown", account=account_id, phase=phase)
            return ActionStatus.RUNNING
        except RunCancelledError as stop:
            self._finish_action(action_id, ActionStatus.CANCELLED, str(stop))
            log.info("playbook phase stopped", account=account_id, phase=phase, reason=str(stop))
            # Re-evaluate now: the payment that stopped the run leads to reactivation.
            self.lifecycle.wake(account_id, actor="runner")
            return ActionStatus.CANCELLED
        except _STEP_ERRORS as error:
            self._fail(action_id, account_id, phase, str(error))
            return ActionStatus.FAILED
        # Done, with the client notice the success makes true, in one transaction.
        self.lifecycle.phase_done(action_id)
        if phase == "delete":
            self._record_deletion(account_id, action_id, suspended_at)
        log.info("playbook phase done", account=account_id, phase=phase, action=action_id)
        return ActionStatus.DONE

    def _record_deletion(
        self, account_id: str, action_id: int, suspended_at: datetime | None
    ) -> None:
        """Append the deletion record: what was removed from which host, and the backup
        proven right before it (its id, when, the digest of what was proven)."""
        proof = proof_for_action(self.backups, account_id, action_id)
        with self.sessions() as session:
            runs = session.scalars(
                select(PlaybookRun).where(PlaybookRun.action_id == action_id)
            ).all()
            hosts = sorted({run.host for run in runs})
            account = session.get(Account, account_id)
            snapshot = stored_snapshot(account) if account else None
        removed: list[str] = []
        for service in snapshot.services if snapshot else ():
            removed += [service.docroot] if service.docroot else []
            removed += [f"{db.engine} database {db.name}" for db in service.databases]
            removed += [f"Unix user {service.system_user}"] if service.system_user else []
            removed += [f"vhost of {domain}" for domain in service.domains[:1]]
        proven = (
            f"backup {proof.backup_id} proven at {proof.proven_at.isoformat()} "
            f"(SHA-256 {proof.digest})"
            if proof
            else "no backup proven (nothing was deleted)"
        )
        self.lifecycle.note(
            account_id,
            f"deletion record: removed from {', '.join(hosts) or 'no host'}; {proven}",
            {
                "removed": removed,
                "hosts": hosts,
                **(proof.as_dict() if proof else {"backup": None}),
                "backup_location": self.backups.get(proof.backup_id).location if proof else None,
            },
            "runner",
        )

    # -- one host --------------------------------------------------------------------

    def _run_service(
        self, action_id: int, account_id: str, phase: str, service: Service, since: datetime
    ) -> None:
        host = self.config.hosts.get(service.host)
        if host is None:
            raise StepFailedError(f"host {service.host!r} is not in the config's [hosts] table")
        playbook = self.library.get(host.playbook)
        run_id, records = self._open_run(action_id, account_id, phase, service, playbook)
        planned = self._plan(phase, playbook, account_id, service.host)
        context = self._context(account_id, phase, service, playbook, since)
        if phase in _TREE_CHECKED and service.docroot:
            self._check_tree(run_id, phase, service, host)
        balance_checked = False
        for position, step in enumerate(planned):
            record = records[position]
            if record.status in (StepStatus.DONE, StepStatus.SKIPPED):
                continue
            # Again after a step stopped inside for a payment that billing did not confirm.
            while True:
                if self.stop_requested.is_set():
                    raise RunInterruptedError
                if phase in _PHASE_STATES:
                    # A payment recorded since the last step: billing is read afresh, and a
                    # paid account leaves the phase's states, which stops the run just below.
                    self.payments.settle(account_id)
                self._check_course(account_id, phase)
                spec = step.spec
                if spec.when and not evaluate(spec.when, context.variables, spec.name):
                    self._record_step(record.id, StepStatus.SKIPPED, None, StepOutcome(False))
                    break
                if step.undo_of is None and spec.is_disabling(phase) and not balance_checked:
                    self._check_balance(account_id)
                    balance_checked = True
                if phase == "delete" and step.undo_of is None and spec.is_disabling(phase):
                    self._prove_backup(action_id, account_id, run_id, playbook)
                self._record_step(record.id, StepStatus.RUNNING, None, None)
                try:
                    outcome = self._attempt(step, context)
                except StepCancelledError as stop:
                    self._record_step(record.id, StepStatus.PENDING, str(stop), None)
                    continue
                except _STEP_ERRORS as error:
                    self._record_step(record.id, StepStatus.FAILED, str(error), None)
                    self._finish_run(run_id, RunStatus.FAILED, str(error))
                    raise
                self._record_step(record.id, StepStatus.DONE, None, outcome)
                if step.undo_of is not None:
                    self._record_step(step.undo_of, StepStatus.UNDONE, None, None)
                break
        self._finish_run(run_id, RunStatus.DONE, None)

    def _attempt(self, step: PlannedStep, context: StepContext) -> StepOutcome:
        """Run the step, retrying as its spec allows. Raises the last error."""
        spec = step.spec
        for attempt in range(spec.retries + 1):
            try:
                if step.undo_of is not None:
                    undo = spec.undo_spec()
                    return STEP_TYPES[undo.type].run(undo, context)
                return STEP_TYPES[spec.type].run(spec, context)
            except _STEP_ERRORS as error:
                if attempt == spec.retries:
                    raise
                stop = context.stop_check() if context.stop_check is not None else None
                if stop is not None:
                    raise StepCancelledError(stop) from error
                log.warning("step failed, retrying", step=spec.name, error=str(error))
                time.sleep(spec.retry_delay.total_seconds())
        raise AssertionError("unreachable")

    def _plan(
        self, phase: str, playbook: Playbook, account_id: str, host: str
    ) -> list[PlannedStep]:
        """The steps of `phase`; unsuspend first undoes the suspend steps that ran, newest
        first."""
        planned = [PlannedStep(spec) for spec in playbook.steps(phase)]
        if phase != "unsuspend":
            return planned
        undo = []
        with self.sessions() as session:
            done = session.execute(
                select(StepRecord.id, StepRecord.position)
                .join(PlaybookRun, StepRecord.run_id == PlaybookRun.id)
                .where(
                    PlaybookRun.account_id == account_id,
                    PlaybookRun.phase == "suspend",
                    PlaybookRun.host == host,
                    StepRecord.status == StepStatus.DONE,
                    StepRecord.changed.is_(True),
                )
                .order_by(StepRecord.id.desc())
            ).all()
        suspend_steps = playbook.steps("suspend")
        for record_id, position in done:
            if position < len(suspend_steps) and suspend_steps[position].undoable:
                undo.append(PlannedStep(suspend_steps[position], undo_of=record_id))
        return undo + planned

    def _open_run(
        self,
        action_id: int,
        account_id: str,
        phase: str,
        service: Service,
        playbook: Playbook,
    ) -> tuple[int, list[StepRecord]]:
        """Return this action's run on the service's host with its step records, creating
        them (one pending record per planned step) on first use."""
        with self.sessions.begin() as session:
            run = session.scalars(
                select(PlaybookRun).where(
                    PlaybookRun.action_id == action_id, PlaybookRun.host == service.host
                )
            ).first()
            if run is None:
                host = self.config.hosts[service.host]
                run = PlaybookRun(
                    account_id=account_id,
                    action_id=action_id,
                    playbook=host.playbook,
                    phase=phase,
                    host=service.host,
                    status=RunStatus.RUNNING,
                    started_at=self.clock(),
                )
                session.add(run)
                session.flush()
                for position, step in enumerate(
                    self._plan(phase, playbook, account_id, service.host)
                ):
                    session.add(
                        StepRecord(
                            run_id=run.id,
                            position=position,
                            name=("undo: " if step.undo_of else "") + step.spec.name[:90],
                            type="run" if step.undo_of else step.spec.type,
                            status=StepStatus.PENDING,
                        )
                    )
            run.status = RunStatus.RUNNING
            session.flush()
            records = session.scalars(
                select(StepRecord).where(StepRecord.run_id == run.id).order_by(StepRecord.position)
            ).all()
            session.expunge_all()
            return run.id, list(records)

    def preview_context(
        self, account_id: str, phase: str, service: Service, playbook: Playbook
    ) -> StepContext:
        """The context a step of `phase` would get, for a dry-run preview."""
        context = self._context(account_id, phase, service, playbook, self.clock())
        context.dry_run = True
        return context

    def _context(
        self, account_id: str, phase: str, service: Service, playbook: Playbook, since: datetime
    ) -> StepContext:
        host = self.config.hosts[service.host]
        variables = step_variables(
            account_id, service, host, playbook, self.config.notices.brand, phase
        )
        return StepContext(
            account_id=account_id,
            phase=phase,
            service=service,
            host_name=service.host,
            transport=self.transports.get(service.host),
            variables=variables,
            backups=self.backups,
            pages=self.pages,
            clock=self.clock,
            since=since,
            alerts=self.alerts,
            stop_check=self._stop_check(account_id, phase),
        )

    def _stop_check(self, account_id: str, phase: str) -> Callable[[], str | None] | None:
        """The check a long step of `phase` asks every few seconds (suspend and delete only:
        a payment does not stop an unsuspend, a verify or a restore)."""
        allowed = _PHASE_STATES.get(phase)
        if allowed is None:
            return None
        return self.payments.stop_check(account_id, {state.value for state in allowed})

    # -- guards ----------------------------------------------------------------------

    def _check_balance(self, account_id: str) -> None:
        """Read the balance afresh; raise RunCancelledError if the account is paid.

        An operator's suspension goes ahead whatever the balance.
        """
        with self.sessions() as session:
            state = session.scalar(select(Account.state).where(Account.id == account_id))
        if state == State.OPS_SUSPENDED.value:
            return
        try:
            snapshot = self.billing.fetch_one(account_id)
        except BillingError as error:
            # Not knowing is not a reason to act: no destructive step without a fresh read.
            raise StepFailedError(
                f"cannot re-read the balance before a destructive step: {error}"
            ) from error
        if snapshot is None:
            raise StepFailedError("billing no longer lists the account; nothing disabled")
        policy = self.config.policy_for(snapshot.plan)
        if not owes(snapshot, policy):
            raise RunCancelledError(
                f"paid ({snapshot.balance} {snapshot.currency} left) before the first"
                " disabling step"
            )

    def _check_course(self, account_id: str, phase: str) -> None:
        """Raise RunCancelledError when the account left the states this phase belongs to."""
        allowed = _PHASE_STATES.get(phase)
        if allowed is None:
            return
        with self.sessions() as session:
            state = session.scalar(select(Account.state).where(Account.id == account_id))
        if state not in {s.value for s in allowed}:
            raise RunCancelledError(f"the account is now {state}; the {phase} phase stops here")

    def _check_tree(self, run_id: int, phase: str, service: Service, host: HostConfig) -> None:
        """Check the docroot by the tree rule before the phase's first step (invariant 5);
        a failure fails the run before it touched anything. A delete phase resumed after
        its docroot was removed finds none, which is no failure."""
        try:
            check_account_tree(
                self.transports.get(service.host),
                host,
                service.docroot,
                service.system_user or None,
                allow_missing=phase == "delete",
            )
        except _STEP_ERRORS as error:
            self._finish_run(run_id, RunStatus.FAILED, str(error))
            raise

    def _check_deletion_allowed(
        self, account_id: str, suspended_at: datetime | None, legal_hold: bool
    ) -> None:
        if legal_hold:
            raise StepFailedError("refused to delete: the account is under legal hold")

    def _prove_backup(
        self, action_id: int, account_id: str, run_id: int, playbook: Playbook
    ) -> None:
        """Prove the backup this deletion relies on, once per execution, right before its
        first destructive step (invariant 1). Raises DeletionRefusedError (the run is
        recorded as failed)."""
        if action_id in self._proven:
            return
        try:
            self.gate.secure(account_id, action_id, site_in_place=playbook.suspended_site_in_place)
        except BackupError as error:
            self._finish_run(run_id, RunStatus.FAILED, str(error))
            raise
        self._proven.add(action_id)

    # -- recording ---------------------------------------------------------------------

    def _record_step(
        self, record_id: int, status: StepStatus, error: str | None, outcome: StepOutcome | None
    ) -> None:
        now = self.clock()
        with self.sessions.begin() as session:
            record = session.get(StepRecord, record_id)
            assert record is not None
            record.status = status
            if status == StepStatus.RUNNING:
                record.started_at = now
            else:
                record.finished_at = now
            if error is not None:
                record.error = error
            if outcome is not None:
                record.changed = outcome.changed
                record.output = outcome.output

    def _finish_run(self, run_id: int, status: RunStatus, error: str | None) -> None:
        with self.sessions.begin() as session:
            run = session.get(PlaybookRun, run_id)
            assert run is not None
            run.status, run.error, run.finished_at = status, error, self.clock()

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

    def _fail(self, action_id: int, account_id: str, phase: str, error: str) -> None:
        self._finish_action(action_id, ActionStatus.FAILED, error)
        log.error("playbook phase failed", account=account_id, phase=phase, error=error)
        failed_state = _FAILED_STATE.get(phase)
        if failed_state is not None:
            self.lifecycle.mark(account_id, failed_state, f"{phase} failed: {error}", "runner")
        if self.alerts is not None:
            self.alerts.alert(f"{phase}-failed", account_id, error, self.clock())


def step_variables(
    account_id: str,
    service: Service,
    host: HostConfig,
    playbook: Playbook,
    brand: BrandConfig,
    phase: str,
) -> dict[str, Any]:
    """Return what a playbook's templates see for one service of an account: `account`,
    `service`, `host`, `vars` (the playbook's, overridden by the host's), `brand` and
    `phase`."""
    return {
        "account": {"id": account_id},
        "service": {
            "host": service.host,
            "system_user": service.system_user,
            "docroot": service.docroot,
            "domains": list(service.domains),
            "databases": [
                {"engine": db.engine, "name": db.name, "user": db.user} for db in service.databases
            ],
        },
        "host": {
            "name": service.host,
            "transport": host.transport,
            "allowed_roots": [str(root) for root in host.allowed_roots],
        },
        "vars": playbook.vars | host.vars,
        "brand": {"company": brand.company_name, "support_email": brand.support_email},
        "phase": phase,
    }
