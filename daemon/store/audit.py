"""Appending to the audit log as part of every write, and checking the chain.

A session listener turns what a transaction records (transitions, notices sent
or failed, playbook steps and phases, backups, webhook events, the safety brake)
into audit entries in the same transaction. Each entry's hash covers the
previous entry's hash and its own content; the single head row is locked while
appending, so concurrent writers (the daemon, a CLI command) never fork the chain.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import Table, event, insert, inspect, select, update
from sqlalchemy.orm import Session, sessionmaker

from daemon.domain.states import (
    ActionStatus,
    ApprovalStatus,
    BackupStatus,
    NoticeStatus,
    StepStatus,
)
from daemon.store.models import (
    Approval,
    AuditEntry,
    AuditHead,
    Backup,
    Correspondence,
    DaemonFlag,
    Event,
    ScheduledAction,
    StepRecord,
    WebhookEvent,
)

_entries = cast(Table, AuditEntry.__table__)

GENESIS = "0" * 64
# The statuses whose arrival is audited: the outcomes, not the steps on the way.
_NOTICE_OUTCOMES = frozenset({NoticeStatus.SENT, NoticeStatus.FAILED})
_STEP_OUTCOMES = frozenset(
    {StepStatus.DONE, StepStatus.FAILED, StepStatus.UNDONE, StepStatus.SKIPPED}
)
_ACTION_OUTCOMES = frozenset({ActionStatus.DONE, ActionStatus.FAILED, ActionStatus.CANCELLED})
_DECISIONS = frozenset({ApprovalStatus.APPROVED, ApprovalStatus.REJECTED})
_BACKUP_OUTCOMES = frozenset(
    {
        BackupStatus.COMPLETED,
        BackupStatus.VERIFIED,
        BackupStatus.FAILED,
        BackupStatus.CORRUPT,
        BackupStatus.EXPIRED,
    }
)


@dataclass(frozen=True)
class _Pending:
    at: datetime
    account_id: str | None
    kind: str
    summary: str
    data: dict[str, Any]


def entry_hash(
    prev_hash: str,
    seq: int,
    at: datetime,
    account_id: str | None,
    kind: str,
    summary: str,
    data: dict[str, Any],
) -> str:
    """Return the hex SHA-256 that chains an entry to `prev_hash`."""
    body = json.dumps(
        {
            "seq": seq,
            "at": at.astimezone(UTC).isoformat(),
            "account": account_id,
            "kind": kind,
            "summary": summary,
            "data": data,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


def install_audit(sessions: sessionmaker[Session]) -> None:
    """Make every session of `sessions`, a factory not yet given the listener, append
    audit entries for what it writes."""
    # No `event.contains` guard: SQLAlchemy keys a listener by the id() of the factory
    # but drops the key only when the factory's session class is garbage-collected, so
    # a new factory at a freed factory's address looked audited already and was not
    # (seen as a state database with no audit entries at all).
    event.listen(sessions, "before_flush", _before_flush)


def _changed_to(obj: object, outcomes: Collection[StrEnum]) -> bool:
    state = inspect(obj)
    status = getattr(obj, "status", None)
    if status not in outcomes:
        return False
    return bool(state.pending or state.attrs.status.history.has_changes())


def _now() -> datetime:
    return datetime.now(UTC)


def _collect(session: Session) -> list[_Pending]:
    pending: list[_Pending] = []
    # Session.new builds a new set of every pending object at each call: asked once per
    # object, a flush of a thousand new rows made a million membership steps.
    new = session.new
    for obj in list(new) + list(session.dirty):
        if isinstance(obj, Event) and obj in new:
            pending.append(
                _Pending(
                    obj.at,
                    obj.account_id,
                    "event",
                    f"{obj.from_state} -> {obj.to_state}: {obj.reason}",
                    {"actor": obj.actor, "details": obj.details},
                )
            )
        elif isinstance(obj, Correspondence) and _changed_to(obj, _NOTICE_OUTCOMES):
            pending.append(
                _Pending(
                    obj.sent_at or obj.created_at,
                    obj.account_id,
                    "notice",
                    f"{obj.notice}{f' #{obj.number}' if obj.number else ''} to "
                    f"{obj.recipient}: {obj.status}",
                    {
                        "message_id": obj.message_id,
                        "subject": obj.subject,
                        "transport": obj.transport,
                        "receipt": obj.receipt,
                        "message_sha256": hashlib.sha256(obj.raw).hexdigest(),
                    },
                )
            )
        elif isinstance(obj, StepRecord) and _changed_to(obj, _STEP_OUTCOMES):
            pending.append(
                _Pending(
                    obj.finished_at or _now(),
                    None,
                    "step",
                    f"step {obj.position + 1} '{obj.name}': {obj.status}",
                    {
                        "run": obj.run_id,
                        "type": obj.type,
                        "changed": obj.changed,
                        "error": obj.error,
                    },
                )
            )
        elif isinstance(obj, ScheduledAction) and _changed_to(obj, _ACTION_OUTCOMES):
            pending.append(
                _Pending(
                    obj.updated_at,
                    obj.account_id,
                    "phase",
                    f"{obj.kind} {obj.name}: {obj.status}",
                    {"action": obj.id, "error": obj.error},
                )
            )
        elif isinstance(obj, Backup) and _changed_to(obj, _BACKUP_OUTCOMES):
            pending.append(
                _Pending(
                    obj.verified_at or obj.completed_at or obj.created_at,
                    obj.account_id,
                    "backup",
                    f"backup {obj.id}: {obj.status}",
                    {"location": obj.location, "size": obj.size_bytes, "error": obj.error},
                )
            )
        elif isinstance(obj, WebhookEvent) and obj in new:
            pending.append(
                _Pending(obj.received_at, obj.account_id, "webhook", f"{obj.source} {obj.key}", {})
            )
        elif isinstance(obj, Approval) and (obj in new or _changed_to(obj, _DECISIONS)):
            who = f" by {obj.decided_by}" if obj.decided_by else ""
            pending.append(
                _Pending(
                    obj.decided_at or obj.requested_at,
                    obj.account_id,
                    "approval",
                    f"{obj.phase} {obj.status}{who}",
                    {"action": obj.action_id, "decided_by": obj.decided_by, "reason": obj.reason},
                )
            )
        elif isinstance(obj, DaemonFlag):
            pending.append(_Pending(obj.updated_at, None, "flag", f"{obj.name} set", obj.value))
    return pending


def _before_flush(session: Session, _context: object, _instances: object) -> None:
    entries = _collect(session)
    if not entries:
        return
    connection = session.connection()
    # Locks the head row until commit: appenders queue up here, one chain.
    connection.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=AuditHead.seq))
    seq, prev = connection.execute(
        select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)
    ).one()
    rows = []
    for entry in entries:
        seq += 1
        data = json.loads(json.dumps(entry.data, default=str))
        digest = entry_hash(prev, seq, entry.at, entry.account_id, entry.kind, entry.summary, data)
        rows.append(
            {
                "seq": seq,
                "at": entry.at,
                "account_id": entry.account_id,
                "kind": entry.kind,
                "summary": entry.summary,
                "data": data,
                "prev_hash": prev,
                "hash": digest,
            }
        )
        prev = digest
    # Through the table, in one statement: nothing reads an entry back in this session,
    # and the ORM's unit of work (an object, its identity, its id fetched back) cost
    # several times the insert (a first sync appends one entry per account in dunning).
    connection.execute(insert(_entries), rows)
    connection.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=seq, hash=prev))


def verify_chain(session: Session) -> list[str]:
    """Check every entry against its predecessor and the head; return the problems found,
    each naming the row (empty when the log is intact)."""
    problems: list[str] = []
    prev, expected_seq = GENESIS, 1
    rows = session.execute(select(AuditEntry).order_by(AuditEntry.seq)).scalars()
    for row in rows:
        where = f"audit row id {row.id} (seq {row.seq})"
        if row.seq != expected_seq:
            problems.append(f"{where}: entries seq {expected_seq}..{row.seq - 1} were removed")
        if row.prev_hash != prev:
            problems.append(f"{where}: does not follow the entry before it")
        digest = entry_hash(
            row.prev_hash, row.seq, row.at, row.account_id, row.kind, row.summary, row.data
        )
        if digest != row.hash:
            problems.append(f"{where}: content was edited after it was written")
        prev, expected_seq = row.hash, row.seq + 1
    head = session.get(AuditHead, 1)
    if head is not None and (head.seq != expected_seq - 1 or head.hash != prev):
        problems.append(
            f"the newest entries were removed: the head names seq {head.seq}, "
            f"the log ends at seq {expected_seq - 1}"
        )
    return problems
