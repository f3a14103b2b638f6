"""`backup`: a verified backup of the account, reused if this phase already made one;
with `panel_archive`, the control panel's own archive is taken into the same backup."""

from __future__ import annotations

from daemon.backup.errors import BackupCancelledError, BackupError
from daemon.backup.manifest import PANEL_ARCHIVE
from daemon.backup.panel_archive import PanelArchive
from daemon.backup.views import BackupView
from daemon.playbooks.steps.base import (
    StepCancelledError,
    StepContext,
    StepFailedError,
    StepOutcome,
)
from daemon.playbooks.steps.specs import BackupSpec
from daemon.playbooks.templating import render_command, render_text


def panel_archive(spec: BackupSpec, context: StepContext) -> PanelArchive | None:
    """Return the panel archive `spec` asks for on the context's host, rendered, or None.

    Raises TemplateError, or PanelArchiveError (a BackupError) for a file name that is
    not a plain name or a work_dir that is not a plain absolute path.
    """
    if spec.panel_archive is None:
        return None
    wanted = spec.panel_archive
    return PanelArchive(
        host=context.host_name,
        command=render_command(wanted.command, context.variables, spec.name),
        file=render_text(wanted.file, context.variables, spec.name),
        format=wanted.format,
        work_dir=render_text(wanted.work_dir, context.variables, spec.name),
        label=spec.name,
    )


def _holds_panel_archive(backup: BackupView, host: str) -> bool:
    objects = backup.manifest.objects if backup.manifest else []
    return any(entry.kind == PANEL_ARCHIVE and entry.host == host for entry in objects)


class BackupStep:
    """Backs up the account's files, databases and history (see daemon.backup), and the
    panel's own archive where the step names one (daemon.backup.panel_archive)."""

    def describe(self, spec: BackupSpec, context: StepContext) -> str:
        also = " with the panel's own archive" if spec.panel_archive else ""
        return (
            f"back up account {context.account_id}{also} to the {context.backups.store.kind} store"
        )

    def run(self, spec: BackupSpec, context: StepContext) -> StepOutcome:
        try:
            archive = panel_archive(spec, context)
        except BackupError as error:
            raise StepFailedError(f"{spec.name}: {error}") from error
        # Idempotent: a verified backup made since this phase was asked for is this
        # run's backup (a resumed run, or an account with services on several hosts),
        # if it holds the panel archive this step asks for.
        existing = context.backups.latest_verified(context.account_id, since=context.since)
        if existing is not None and (
            archive is None or _holds_panel_archive(existing, context.host_name)
        ):
            return StepOutcome(False, {"backup": existing.id, "reused": True})
        if context.dry_run:
            return StepOutcome(False, {"would_back_up": context.account_id})
        try:
            made = context.backups.create(
                context.account_id,
                reason=context.phase,
                verify=spec.verify,
                stop_check=context.stop_check,
                panel_archives=[archive] if archive else [],
            )
        except BackupCancelledError as error:
            raise StepCancelledError(str(error)) from error
        except BackupError as error:
            raise StepFailedError(f"{spec.name}: {error}") from error
        if spec.verify and not made.verified:
            raise StepFailedError(f"{spec.name}: backup {made.id} did not verify: {made.error}")
        return StepOutcome(True, {"backup": made.id, "bytes": made.size_bytes})
