"""`backup`: a verified backup of the account, reused if this phase already made one."""

from __future__ import annotations

from daemon.backup.errors import BackupCancelledError, BackupError
from daemon.playbooks.steps.base import (
    StepCancelledError,
    StepContext,
    StepFailedError,
    StepOutcome,
)
from daemon.playbooks.steps.specs import BackupSpec


class BackupStep:
    """Backs up the account's files, databases and history (see daemon.backup)."""

    def describe(self, spec: BackupSpec, context: StepContext) -> str:
        return f"back up account {context.account_id} to the {context.backups.store.kind} store"

    def run(self, spec: BackupSpec, context: StepContext) -> StepOutcome:
        # Idempotent: a verified backup made since this phase was asked for is this
        # run's backup (a resumed run, or an account with services on several hosts).
        existing = context.backups.latest_verified(context.account_id, since=context.since)
        if existing is not None:
            return StepOutcome(False, {"backup": existing.id, "reused": True})
        if context.dry_run:
            return StepOutcome(False, {"would_back_up": context.account_id})
        try:
            made = context.backups.create(
                context.account_id,
                reason=context.phase,
                verify=spec.verify,
                stop_check=context.stop_check,
            )
        except BackupCancelledError as error:
            raise StepCancelledError(str(error)) from error
        except BackupError as error:
            raise StepFailedError(f"{spec.name}: {error}") from error
        if spec.verify and not made.verified:
            raise StepFailedError(f"{spec.name}: backup {made.id} did not verify: {made.error}")
        return StepOutcome(True, {"backup": made.id, "bytes": made.size_bytes})
