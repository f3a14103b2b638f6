"""`restore`: site files into the docroot and databases re-imported from the newest
verified backup (daemon.backup.restore, with its checks of every archive member); with
`panel_archive`, the panel's own archive instead, put back into a fresh root-only
directory on the host and handed to the panel's restore command
(daemon.backup.panel_restore)."""

from __future__ import annotations

from daemon.backup.errors import BackupError
from daemon.backup.panel_restore import newest_with_panel_archive, restore_panel_archive
from daemon.backup.restore import RestoreRequest, restore_backup
from daemon.playbooks.steps.base import StepContext, StepFailedError, StepOutcome
from daemon.playbooks.steps.specs import RestoreSpec
from daemon.playbooks.templating import render_command, render_text


class RestoreStep:
    """Brings the account's data back onto this host from its newest verified backup (or
    the backup the operator chose, `context.backup_id`)."""

    def describe(self, spec: RestoreSpec, context: StepContext) -> str:
        try:
            which = self._backup_id(spec, context)
        except BackupError:
            which = "(none verified)"
        what = "the panel archive of backup" if spec.panel_archive else "backup"
        return f"restore {what} {which} onto {context.host_name}"

    def run(self, spec: RestoreSpec, context: StepContext) -> StepOutcome:
        try:
            backup_id = self._backup_id(spec, context)
        except BackupError as error:
            raise StepFailedError(f"{spec.name}: {error}") from error
        if spec.panel_archive is not None:
            return self._panel_archive(spec, context, backup_id)
        # The restore phase is asked for by ops to bring the site back: it may replace
        # what is in the docroot, and is recorded as done by this playbook phase.
        request = RestoreRequest(
            backup_id,
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
        return StepOutcome(not context.dry_run, {"backup": backup_id, "restored": restored})

    @staticmethod
    def _backup_id(spec: RestoreSpec, context: StepContext) -> str:
        """The backup to restore. Raises BackupError when there is none."""
        if context.backup_id is not None:
            return context.backup_id
        if spec.panel_archive is not None:
            return newest_with_panel_archive(
                context.backups, context.account_id, context.host_name
            ).id
        latest = context.backups.latest_verified(context.account_id)
        if latest is None:
            raise BackupError(f"{context.account_id} has no verified backup")
        return latest.id

    @staticmethod
    def _panel_archive(spec: RestoreSpec, context: StepContext, backup_id: str) -> StepOutcome:
        assert spec.panel_archive is not None
        command = render_command(spec.panel_archive.command, context.variables, spec.name)
        work_dir = render_text(spec.panel_archive.work_dir, context.variables, spec.name)
        if context.dry_run:
            return StepOutcome(False, {"backup": backup_id, "would_run": command})
        try:
            output = restore_panel_archive(
                context.backups,
                backup_id,
                host=context.host_name,
                work_dir=work_dir,
                command=command,
                actor=f"playbook:{context.phase}",
            )
        except BackupError as error:
            raise StepFailedError(f"{spec.name}: {error}") from error
        changed = "lapse: unchanged" not in output.splitlines()
        return StepOutcome(changed, {"backup": backup_id, "stdout": output[-4000:]})
