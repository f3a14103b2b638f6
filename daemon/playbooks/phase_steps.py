"""Running one phase's steps on one host, in order, each recorded before and after.

The run's step records are its plan: made when the run opens, read back from the
records when it resumes (daemon.playbooks.planning), each step walked with its own
record. A step already done (or skipped) on an earlier try is not run again. Before each
step the phase looks for a payment and checks the account is still on its course;
before the first step that disables anything it reads the balance afresh, and in
a delete phase proves the backup first. A failed step (after its retries) fails
the run; a step stopped inside for a payment is tried again after the look.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime

import structlog
from sqlalchemy.orm import Session, sessionmaker

from daemon.config.schema import HostConfig
from daemon.domain.phases import Phase
from daemon.domain.snapshot import Service
from daemon.domain.states import RunStatus, StepStatus
from daemon.playbooks.contexts import StepContexts
from daemon.playbooks.errors import STEP_ERRORS, ClaimLostError, RunInterruptedError
from daemon.playbooks.guards import PhaseGuards
from daemon.playbooks.library import PlaybookLibrary
from daemon.playbooks.payment_guard import PaymentGuard
from daemon.playbooks.phase_rules import PHASE_STATES, TREE_CHECKED
from daemon.playbooks.planning import PlannedStep, plan_steps, planned_from_records
from daemon.playbooks.run_log import RunLog
from daemon.playbooks.steps import (
    STEP_TYPES,
    StepCancelledError,
    StepContext,
    StepFailedError,
    StepOutcome,
)
from daemon.playbooks.templating import evaluate

log = structlog.get_logger("lapse.playbooks")


class PhaseSteps:
    """Runs the steps of one queued phase on one of the account's hosts."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        hosts: Mapping[str, HostConfig],
        library: PlaybookLibrary,
        contexts: StepContexts,
        guards: PhaseGuards,
        payments: PaymentGuard,
        run_log: RunLog,
        stop_requested: threading.Event,
    ) -> None:
        self.sessions = sessions
        self.hosts = hosts
        self.library = library
        self.contexts = contexts
        self.guards = guards
        self.payments = payments
        self.run_log = run_log
        self.stop_requested = stop_requested

    def run(
        self,
        action_id: int,
        account_id: str,
        phase: str,
        service: Service,
        since: datetime,
        holds: Callable[[], bool],
    ) -> None:
        """Run `phase` on the service's host, from its first unfinished step; `holds()`
        says whether the action is still this run's (and extends its lease).

        Raises RunInterruptedError (shutdown), RunCancelledError (paid, or off course),
        ClaimLostError (another daemon took the action over: nothing more was written)
        or one of STEP_ERRORS (the run is recorded as failed).
        """

        def still_mine() -> None:
            if not holds():
                raise ClaimLostError(f"action {action_id} was taken over by another daemon")

        host = self.hosts.get(service.host)
        if host is None:
            raise StepFailedError(f"host {service.host!r} is not in the config's [hosts] table")
        playbook = self.library.get(host.playbook)
        run_id, records = self.run_log.open_run(
            action_id,
            account_id,
            phase,
            service,
            host.playbook,
            lambda: plan_steps(self.sessions, phase, playbook, account_id, service.host),
        )
        try:
            planned = planned_from_records(self.sessions, phase, playbook, records)
        except StepFailedError as error:
            self.run_log.finish_run(run_id, RunStatus.FAILED, str(error))
            raise
        context = self.contexts.build(account_id, phase, service, playbook, since)
        if phase in TREE_CHECKED and service.docroot:
            self.guards.check_tree(run_id, phase, service, host)
        balance_checked = False
        for step, record in zip(planned, records, strict=True):
            if record.status in (StepStatus.DONE, StepStatus.SKIPPED):
                continue
            # Again after a step stopped inside for a payment that billing did not confirm.
            while True:
                if self.stop_requested.is_set():
                    raise RunInterruptedError
                still_mine()
                if phase in PHASE_STATES:
                    # A payment recorded since the last step: billing is read afresh, and a
                    # paid account leaves the phase's states, which stops the run just below.
                    self.payments.settle(account_id)
                self.guards.check_course(account_id, phase)
                spec = step.spec
                if spec.when and not evaluate(spec.when, context.variables, spec.name):
                    self.run_log.record_step(
                        record.id, StepStatus.SKIPPED, None, StepOutcome(False)
                    )
                    break
                if step.undo_of is None and spec.is_disabling(phase) and not balance_checked:
                    self.guards.check_balance(account_id)
                    balance_checked = True
                if phase == Phase.DELETE and step.undo_of is None and spec.is_disabling(phase):
                    self.guards.prove_backup(action_id, account_id, run_id, playbook, context)
                self.run_log.record_step(record.id, StepStatus.RUNNING, None, None)
                try:
                    outcome = self._attempt(step, context)
                except StepCancelledError as stop:
                    still_mine()
                    self.run_log.record_step(record.id, StepStatus.PENDING, str(stop), None)
                    continue
                except STEP_ERRORS as error:
                    still_mine()
                    self.run_log.record_step(record.id, StepStatus.FAILED, str(error), None)
                    self.run_log.finish_run(run_id, RunStatus.FAILED, str(error))
                    raise
                still_mine()
                if step.undo_of is None:
                    self.run_log.record_step(record.id, StepStatus.DONE, None, outcome)
                else:
                    self.run_log.record_undo_done(record.id, step.undo_of, outcome)
                break
        self.run_log.finish_run(run_id, RunStatus.DONE, None)

    def _attempt(self, step: PlannedStep, context: StepContext) -> StepOutcome:
        """Run the step, retrying as its spec allows. Raises the last error."""
        spec = step.spec
        for attempt in range(spec.retries + 1):
            try:
                if step.undo_of is not None:
                    undo = spec.undo_spec()
                    return STEP_TYPES[undo.type].run(undo, context)
                return STEP_TYPES[spec.type].run(spec, context)
            except STEP_ERRORS as error:
                if attempt == spec.retries:
                    raise
                stop = context.stop_check() if context.stop_check is not None else None
                if stop is not None:
                    raise StepCancelledError(stop) from error
                log.warning("step failed, retrying", step=spec.name, error=str(error))
                time.sleep(spec.retry_delay.total_seconds())
        raise AssertionError("unreachable")
