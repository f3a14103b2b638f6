"""The deletion gate: no deletion without a backup proven right before it (invariant 1).

Right before the first destructive step of a delete phase the runner asks the
gate for a proof. The gate proves the newest backup made since the suspension
(daemon.backup.proof), its panel archives included. When that fails, the backup is
marked corrupt and ops are alerted; if the site is still whole on the host, a fresh
backup is taken (with the panel's own archive, where the playbook takes one) and
proven the same way, and the deletion relies on that one. When no backup can be
proven, the gate refuses with every reason, and nothing is deleted.

A proven backup is protected for `backup.retention` from the proof (Object Lock on
S3, read-only files in a local directory); with `object_lock = "required"` a
backup the store cannot lock is no ground for a deletion.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog
from sqlalchemy import select

from daemon.backup.errors import BackupError
from daemon.backup.panel_archive import PanelArchive
from daemon.backup.proof import Proof, ProofError, ProtectionError, prove_backup
from daemon.backup.service import BackupService
from daemon.config.schema import S3Store
from daemon.domain.states import COMPLETE_BACKUPS, StepStatus
from daemon.notices.alerts import OpsAlerts
from daemon.store.models import Account, PlaybookRun, StepRecord

log = structlog.get_logger("lapse.backup")


class DeletionRefusedError(BackupError):
    """No backup could be proven for a deletion; nothing may be deleted. Says why."""


class DeletionGate:
    """Proves the backup a deletion relies on, taking a fresh one when it must."""

    def __init__(self, backups: BackupService, alerts: OpsAlerts | None) -> None:
        self.backups = backups
        self.alerts = alerts

    def secure(
        self,
        account_id: str,
        action_id: int,
        *,
        site_in_place: bool,
        panel_archives: Sequence[PanelArchive] = (),
    ) -> Proof:
        """Return a proof, made now, of a backup of the account taken since its suspension,
        for the delete phase `action_id`.

        `site_in_place` says whether the site stays at its docroot while suspended (the
        playbook's `suspended_site_in_place`); `panel_archives` are the panel's own
        archives a fresh backup takes as well (the playbook's). Raises
        DeletionRefusedError naming every reason when no backup can be proven.
        """
        no_fresh = self._why_no_fresh(action_id, site_in_place)
        reasons: list[str] = []
        relied = self._relied_on(account_id)
        if relied is None:
            reasons.append("no backup made since the suspension")
        else:
            try:
                return self._prove(account_id, relied, action_id)
            except ProofError as error:
                reasons.append(str(error))
                self._alert("backup-corrupt", account_id, f"{error}; {self._next(no_fresh)}")
        if no_fresh is not None:
            raise DeletionRefusedError(
                "refused to delete: " + "; ".join(reasons) + f"; no fresh backup: {no_fresh}"
            )
        try:
            fresh = self.backups.create(
                account_id, reason="deletion", verify=False, panel_archives=panel_archives
            )
            return self._prove(account_id, fresh.id, action_id)
        except BackupError as error:
            reasons.append(f"the fresh backup failed: {error}")
        raise DeletionRefusedError("refused to delete, nothing was removed: " + "; ".join(reasons))

    def _prove(self, account_id: str, backup_id: str, action_id: int) -> Proof:
        """Prove and protect `backup_id`. Raises ProofError, or DeletionRefusedError when
        the store cannot give the protection the config requires."""
        until = self.backups.clock() + self.backups.config.retention
        try:
            proof = prove_backup(self.backups, backup_id, protect_until=until, action_id=action_id)
        except ProtectionError as error:
            raise DeletionRefusedError(f"refused to delete: {error}") from error
        if proof.protected_until is None:
            store = self.backups.config.store
            detail = (
                f"backup {backup_id} of {account_id} is proven but not locked: the store "
                f"{self.backups.store.describe('')} has no Object Lock"
            )
            if isinstance(store, S3Store) and store.object_lock == "required":
                raise DeletionRefusedError(f"refused to delete: {detail} (object_lock = required)")
            log.warning("deletion relies on an unlocked backup", detail=detail)
        return proof

    def _relied_on(self, account_id: str) -> str | None:
        """Return the id of the newest complete backup made since the account's
        suspension, or None. One already found corrupt is returned too: its proof fails
        with the reason, and ops hear of it before a fresh one is taken."""
        with self.backups.sessions() as session:
            account = session.get(Account, account_id)
            since = account.suspended_at if account else None
        for backup in self.backups.list(account_id):
            if backup.status in COMPLETE_BACKUPS and (since is None or backup.created_at >= since):
                return backup.id
        return None

    def _why_no_fresh(self, action_id: int, site_in_place: bool) -> str | None:
        """Why a backup taken now would not hold the site, or None when it would: only
        before any step of the deletion ran, and with the site at its docroot."""
        with self.backups.sessions() as session:
            began = session.scalar(
                select(StepRecord.id)
                .join(PlaybookRun, StepRecord.run_id == PlaybookRun.id)
                .where(
                    PlaybookRun.action_id == action_id,
                    StepRecord.status.in_((StepStatus.RUNNING, StepStatus.DONE, StepStatus.FAILED)),
                )
                .limit(1)
            )
        if began is not None:
            return "the deletion had already begun, and a half-deleted site is no backup"
        if not site_in_place:
            return (
                "the playbook moves the site out of its docroot while suspended "
                "(suspended_site_in_place = false), so a backup now would not hold it"
            )
        return None

    @staticmethod
    def _next(no_fresh: str | None) -> str:
        if no_fresh is None:
            return "a fresh backup is taken and proven before anything is deleted"
        return f"the deletion stops, nothing more is removed ({no_fresh})"

    def _alert(self, kind: str, account_id: str, detail: str) -> None:
        if self.alerts is not None:
            self.alerts.alert(kind, account_id, detail, self.backups.clock())
