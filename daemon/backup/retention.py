"""Expiring old backups, never one that a pending deletion or a legal hold relies on.

A backup's retention runs from the later of its creation and the account's last
reactivation or deletion ("kept N days after the account is reactivated or
deleted"). While an account is suspended, waiting for deletion, or under legal
hold (directly or as the state a hold will resume), its backups are kept whatever
their age.
"""

from __future__ import annotations

from datetime import datetime

import structlog
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from daemon.backup.manifest import object_key
from daemon.backup.service import BackupService
from daemon.backup.stores.base import BackupStoreError
from daemon.domain.states import (
    COMPLETE_BACKUPS,
    FAILED_STATES,
    SUSPENDED_STATES,
    ActionStatus,
    BackupStatus,
    State,
)
from daemon.store.models import Account, Backup, Event, ScheduledAction

log = structlog.get_logger("lapse.backup")

_PROTECTING_STATES = frozenset(
    {*SUSPENDED_STATES, *FAILED_STATES, State.LEGAL_HOLD, State.OPS_SUSPENDED}
)
_ENDING_STATES = (State.ACTIVE.value, State.DELETED.value)
_EXPIRABLE = (*COMPLETE_BACKUPS, BackupStatus.FAILED)


def expire_backups(service: BackupService, now: datetime) -> list[str]:
    """Delete the objects of every backup past its retention and mark it 'expired'.

    Returns the ids expired. A backup whose
    objects the store refuses to delete (e.g. under Object Lock) keeps its status
    and is tried again at the next run.
    """
    retention = service.config.retention
    expired: list[str] = []
    with service.sessions() as session:
        protected = _protected_accounts(session)
        ended = dict(
            session.execute(
                select(Event.account_id, func.max(Event.at))
                .where(Event.to_state.in_(_ENDING_STATES))
                .group_by(Event.account_id)
            ).all()
        )
        rows = session.scalars(
            select(Backup).where(Backup.status.in_(_EXPIRABLE)).order_by(Backup.created_at)
        ).all()
        for row in rows:
            if row.account_id in protected:
                continue
            start = max(row.created_at, ended.get(row.account_id, row.created_at))
            if start + retention > now:
                continue
            try:
                service.store.delete_prefix(object_key(row.account_id, row.id))
            except BackupStoreError as error:
                log.warning("backup not expired yet", backup=row.id, error=str(error))
                continue
            row.status = BackupStatus.EXPIRED
            row.error = None
            expired.append(row.id)
            log.info("backup expired", backup=row.id, account=row.account_id)
        session.commit()
    return expired


def _protected_accounts(session: Session) -> set[str]:
    """Return the accounts whose backups must be kept: suspended, awaiting deletion or
    under legal hold."""
    states = [state.value for state in _PROTECTING_STATES]
    held = session.scalars(
        select(Account.id).where(Account.state.in_(states) | Account.resume_state.in_(states))
    ).all()
    deleting = session.scalars(
        select(ScheduledAction.account_id).where(
            ScheduledAction.name == "delete",
            ScheduledAction.status.in_(
                (ActionStatus.PENDING, ActionStatus.RUNNING, ActionStatus.FAILED)
            ),
        )
    ).all()
    return set(held) | set(deleting)
