"""The checks a phase passes before it touches a host: the balance read afresh, the
account still on the phase's course, each docroot by the tree rule, and, before a
deletion, no legal hold and a proven backup."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from daemon.backup.errors import BackupError
from daemon.backup.gate import DeletionGate
from daemon.backup.panel_archive import PanelArchive
from daemon.backup.tree import check_account_tree
from daemon.billing.base import BillingError, BillingSource
from daemon.config.schema import HostConfig, PolicyConfig
from daemon.domain.phases import Phase
from daemon.domain.snapshot import Service
from daemon.domain.states import RunStatus, State
from daemon.playbooks.errors import STEP_ERRORS, RunCancelledError
from daemon.playbooks.phase_rules import PHASE_STATES
from daemon.playbooks.run_log import RunLog
from daemon.playbooks.schema import Playbook
from daemon.playbooks.steps import StepContext, StepFailedError
from daemon.playbooks.steps.backup import panel_archive
from daemon.playbooks.steps.specs import BackupSpec
from daemon.playbooks.templating import TemplateError
from daemon.policy.rules import owes
from daemon.store.models import Account
from daemon.transport import Transports


class PhaseGuards:
    """Raises before a step that must not run: RunCancelledError when the account was
    paid or changed course, StepFailedError (or the check's own error) when the phase
    must fail instead."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        billing: BillingSource,
        policy_for: Callable[[str], PolicyConfig],
        transports: Transports,
        gate: DeletionGate,
        log: RunLog,
    ) -> None:
        self.sessions = sessions
        self.billing = billing
        self.policy_for = policy_for
        self.transports = transports
        self.gate = gate
        self.log = log
        self._proven: set[int] = set()  # delete actions proven in this execution

    def check_balance(self, account_id: str) -> None:
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
        policy = self.policy_for(snapshot.plan)
        if not owes(snapshot, policy):
            raise RunCancelledError(
                f"paid ({snapshot.balance} {snapshot.currency} left) before the first"
                " disabling step"
            )

    def check_course(self, account_id: str, phase: str) -> None:
        """Raise RunCancelledError when the account left the states this phase belongs to."""
        allowed = PHASE_STATES.get(phase)
        if allowed is None:
            return
        with self.sessions() as session:
            state = session.scalar(select(Account.state).where(Account.id == account_id))
        if state not in {s.value for s in allowed}:
            raise RunCancelledError(f"the account is now {state}; the {phase} phase stops here")

    def check_tree(self, run_id: int, phase: str, service: Service, host: HostConfig) -> None:
        """Check the docroot by the tree rule before the phase's first step (invariant 5);
        a failure fails the run before it touched anything. A delete phase resumed after
        its docroot was removed finds none, which is no failure."""
        try:
            check_account_tree(
                self.transports.get(service.host),
                host,
                service.docroot,
                service.system_user or None,
                allow_missing=phase == Phase.DELETE,
            )
        except STEP_ERRORS as error:
            self.log.finish_run(run_id, RunStatus.FAILED, str(error))
            raise

    def check_deletion_allowed(
        self, account_id: str, suspended_at: datetime | None, legal_hold: bool
    ) -> None:
        """Raise StepFailedError when the account may not be deleted (a legal hold)."""
        if legal_hold:
            raise StepFailedError("refused to delete: the account is under legal hold")

    def prove_backup(
        self,
        action_id: int,
        account_id: str,
        run_id: int,
        playbook: Playbook,
        context: StepContext,
    ) -> None:
        """Prove the backup this deletion relies on, once per execution, right before its
        first destructive step (invariant 1); a fresh backup, if one is needed, takes the
        panel archives the playbook's suspend phase takes. Raises DeletionRefusedError
        (the run is recorded as failed)."""
        if action_id in self._proven:
            return
        try:
            self.gate.secure(
                account_id,
                action_id,
                site_in_place=playbook.suspended_site_in_place,
                panel_archives=suspend_panel_archives(playbook, context),
            )
        except (BackupError, TemplateError) as error:
            self.log.finish_run(run_id, RunStatus.FAILED, str(error))
            raise
        self._proven.add(action_id)

    def forget_proof(self, action_id: int) -> None:
        """Forget that `action_id`'s backup was proven: every execution proves it afresh."""
        self._proven.discard(action_id)


def suspend_panel_archives(playbook: Playbook, context: StepContext) -> list[PanelArchive]:
    """The panel archives the playbook's suspend phase takes on the context's host.

    Raises TemplateError, or PanelArchiveError for a bad file name or work_dir.
    """
    archives = [
        panel_archive(spec, context) for spec in playbook.suspend if isinstance(spec, BackupSpec)
    ]
    return [archive for archive in archives if archive is not None]
