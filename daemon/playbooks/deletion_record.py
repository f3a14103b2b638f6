"""The deletion record: once a delete phase is done, what was removed from which host,
and the backup proven right before it, appended to the account's history."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from daemon.backup.proof import proof_for_action
from daemon.backup.service import BackupService
from daemon.playbooks.ports import Lifecycle
from daemon.store.models import Account, PlaybookRun
from daemon.store.records import stored_snapshot


class DeletionRecords:
    """Writes the deletion record of a finished delete phase."""

    def __init__(
        self, sessions: sessionmaker[Session], lifecycle: Lifecycle, backups: BackupService
    ) -> None:
        self.sessions = sessions
        self.lifecycle = lifecycle
        self.backups = backups

    def record(self, account_id: str, action_id: int, suspended_at: datetime | None) -> None:
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
