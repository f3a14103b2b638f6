"""`restore`: site files into the docroot and databases re-imported from the newest
verified backup (daemon.backup.restore, with its checks of every archive member)."""

from __future__ import annotations

from daemon.backup.errors import BackupError
from daemon.backup.restore import RestoreRequest, restore_backup
from daemon.playbooks.steps.base import StepContext, StepFailedError, StepOutcome
from daemon.playbooks.steps.specs import RestoreSpec


class RestoreStep:
    """Brings the account's data back onto this host from its newest verified backup."""

    def describe(self, spec: RestoreSpec, context: StepContext) -> str:
        latest = context.backups.latest_verified(context.account_id)
        which = latest.id if latest else "(none verified)"
        return f"restore backup {which} onto {context.host_name}"

    def run(self, spec: RestoreSpec, context: StepContext) -> StepOutcome:
        latest = context.backups.latest_verified(context.account_id)
        if latest is None:
            raise StepFailedError(f"{spec.name}: {context.account_id} has no verified backup")
        # The restore phase is asked for by ops to bring the site back: it may replace
        # what is in the docroot, and is recorded as done by this playbook phase.
        request = RestoreRequest(
            latest.id,
            host=context.host_name,
            dry_run=context.dry_run,
            force=True,
            actor=f"playbook:{context.phase}",
        )
        try:
            report = restore_backup(context.backups, request)
        except BackupError as error:
            raise StepFailedError(f"{spec.name}: {error}") from error
        restored = [f"{item.name} -> {item.target}" for item in report.restored]
        return StepOutcome(not context.dry_run, {"backup": latest.id, "restored": restored})
