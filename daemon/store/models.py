"""The state database's tables (SQLAlchemy 2 declarative models).

The schema itself is created and changed only by the alembic migrations in
`migrations/versions`; a test checks that the two agree.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Text,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from daemon.domain.states import (
    ActionStatus,
    ApprovalStatus,
    BackupStatus,
    NoticeStatus,
    RunStatus,
    StepStatus,
)
from daemon.store.types import UtcDateTime


class Base(DeclarativeBase):
    """Declarative base of the state tables."""

    type_annotation_map = {datetime: UtcDateTime(), dict[str, Any]: JSON(), Decimal: Numeric(18, 4)}


def status_column(kind: type[StrEnum]) -> Enum:
    """The column type of a status: the members of `kind` stored as their values in a
    VARCHAR(20), as the migrations made it (no database enum type, no CHECK constraint).

    Rows read back hold members; a string that is no value of `kind` is refused on
    write and on read (LookupError).
    """
    return Enum(
        kind,
        native_enum=False,
        create_constraint=False,
        length=20,
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
    )


class Account(Base):
    """One billing account and where it stands in the lifecycle (the source of truth)."""

    __tablename__ = "accounts"
    # The blocks of accounts whose stored snapshot was not read from billing's rows by
    # a sync (a wake-up's fresh read): the next sync lists them (see billing_block).
    __table_args__ = (
        Index(
            "ix_accounts_unread_block",
            "billing_block",
            sqlite_where=text("billing_digest IS NULL AND billing_block IS NOT NULL"),
            postgresql_where=text("billing_digest IS NULL AND billing_block IS NOT NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    plan: Mapped[str] = mapped_column(String(63))
    state: Mapped[str] = mapped_column(String(20), index=True)
    resume_state: Mapped[str | None] = mapped_column(String(20))
    reminders_sent: Mapped[int] = mapped_column(Integer, default=0)
    warnings_sent: Mapped[int] = mapped_column(Integer, default=0)
    clock_start: Mapped[datetime | None]
    final_notice_at: Mapped[datetime | None]
    suspend_at: Mapped[datetime | None]
    suspended_at: Mapped[datetime | None]
    delete_at: Mapped[datetime | None]
    last_contact_at: Mapped[datetime | None]
    last_warning_at: Mapped[datetime | None]
    paused_since: Mapped[datetime | None]
    hold_reason: Mapped[str | None] = mapped_column(Text)
    hold_until: Mapped[datetime | None]
    next_wake_at: Mapped[datetime | None] = mapped_column(index=True)
    balance: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))
    snapshot: Mapped[dict[str, Any]]
    snapshot_hash: Mapped[str] = mapped_column(String(64))
    # The digest of the raw billing data the snapshot was read from (a source's own
    # form, e.g. flat rows): a sync that finds it unchanged skips reading the account.
    # Empty when the snapshot came from elsewhere (a wake-up's fresh read).
    billing_digest: Mapped[str | None] = mapped_column(String(64))
    # The block of billing rows (see BillingBlock) the account was last listed in, by
    # its key: a sync lists the blocks of the accounts whose deadline came.
    billing_block: Mapped[str | None] = mapped_column(String(64))
    first_seen_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # Optimistic locking: the daemon and an operator's CLI command may touch the
    # same account at once; the later writer retries instead of overwriting.
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}


class Event(Base):
    """One lifecycle transition or recorded decision. Append-only (a trigger forbids edits)."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_account_at", "account_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]
    from_state: Mapped[str] = mapped_column(String(20))
    to_state: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(100))
    details: Mapped[dict[str, Any]]


class ScheduledAction(Base):
    """An action a transition asked for (a notice or a playbook phase) and its progress."""

    __tablename__ = "scheduled_actions"
    __table_args__ = (
        Index("ix_actions_status_due", "status", "due_at"),
        Index("ix_actions_pick", "kind", "status", "priority", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(String(64), index=True)
    event_id: Mapped[int | None] = mapped_column(ForeignKey("events.id"))
    kind: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(40))
    status: Mapped[ActionStatus] = mapped_column(status_column(ActionStatus))
    due_at: Mapped[datetime]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    # The process running it ("host:pid:start"), so a crashed run is told from a live one.
    claimed_by: Mapped[str | None] = mapped_column(String(120))
    # Which runs first among due actions: lower first (daemon.domain.phases.PHASE_PRIORITY).
    priority: Mapped[int] = mapped_column(Integer, default=4, server_default="4")
    # The hosts whose `max_parallel` the action counts against, space-separated: every
    # host one of the account's services is on (a site on one, its database on another).
    hosts: Mapped[str | None] = mapped_column(String(1024))
    # Until when the daemon running it holds it; renewed while it works. Past it, another
    # daemon resumes the action from the step reached. None: claimed by a command
    # (or before leases), told stale by `claimed_by` alone.
    lease_until: Mapped[datetime | None]


class Correspondence(Base):
    """A client notice: written here before delivery, marked sent once the server accepts it."""

    __tablename__ = "correspondence"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(String(64), index=True)
    action_id: Mapped[int | None] = mapped_column(ForeignKey("scheduled_actions.id"))
    notice: Mapped[str] = mapped_column(String(30))
    number: Mapped[int] = mapped_column(Integer, default=0)
    recipient: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(Text)
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    status: Mapped[NoticeStatus] = mapped_column(status_column(NoticeStatus))
    transport: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    receipt: Mapped[str | None] = mapped_column(Text)
    raw: Mapped[bytes] = mapped_column(LargeBinary)


class PlaybookRun(Base):
    """One run of a playbook phase for an account."""

    __tablename__ = "playbook_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(String(64), index=True)
    action_id: Mapped[int | None] = mapped_column(ForeignKey("scheduled_actions.id"))
    playbook: Mapped[str] = mapped_column(String(63))
    phase: Mapped[str] = mapped_column(String(20))
    host: Mapped[str] = mapped_column(String(63))
    status: Mapped[RunStatus] = mapped_column(status_column(RunStatus))
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)


class StepRecord(Base):
    """One step of a playbook run: pending, running, done, failed or undone.

    An unsuspend run's undo step names in `undoes` the id of the suspend step record it
    reverses: the run is resumed from its own records, matched to steps by identity.
    """

    __tablename__ = "step_records"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("playbook_runs.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(100))
    type: Mapped[str] = mapped_column(String(30))
    status: Mapped[StepStatus] = mapped_column(status_column(StepStatus))
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    changed: Mapped[bool] = mapped_column(default=False)
    error: Mapped[str | None] = mapped_column(Text)
    output: Mapped[dict[str, Any] | None]
    undoes: Mapped[int | None]


class Backup(Base):
    """A backup of an account, with its manifest and verification status."""

    __tablename__ = "backups"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(64), index=True)
    store: Mapped[str] = mapped_column(String(20))
    location: Mapped[str] = mapped_column(Text)
    status: Mapped[BackupStatus] = mapped_column(status_column(BackupStatus))
    reason: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]
    verified_at: Mapped[datetime | None]
    size_bytes: Mapped[int | None]
    manifest: Mapped[dict[str, Any] | None]
    error: Mapped[str | None] = mapped_column(Text)


class AuditEntry(Base):
    """One entry of the hash-chained audit log: every decision and action, in order.

    `hash` is the SHA-256 of the previous entry's hash and this entry's content, so
    editing or removing an entry breaks the chain from there on (`lapse audit verify`).
    """

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    seq: Mapped[int] = mapped_column(Integer, unique=True)
    at: Mapped[datetime]
    account_id: Mapped[str | None] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(30))
    summary: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]]
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The newest audit entry's number and hash (one row): appenders lock it, so the
    chain never forks, and removing the newest entries shows against it."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))


class WebhookEvent(Base):
    """A payment event received by the webhook listener; its key makes replays no-ops.

    It is written before the listener answers, and stays pending (`handled_at` empty)
    until the account was evaluated with a fresh billing read after it: a running
    phase and the scheduler both look for pending events, so none is lost (invariant 2).
    """

    __tablename__ = "webhook_events"
    __table_args__ = (Index("ix_webhook_events_pending", "handled_at", "account_id"),)

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    received_at: Mapped[datetime]
    account_id: Mapped[str | None] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(20))
    handled_at: Mapped[datetime | None]


class DaemonFlag(Base):
    """A named daemon-wide setting that must survive restarts (the safety brake)."""

    __tablename__ = "daemon_flags"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime]


class Approval(Base):
    """A person's decision on a queued phase the plan asks approval for (`approve`)."""

    __tablename__ = "approvals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    action_id: Mapped[int] = mapped_column(ForeignKey("scheduled_actions.id"), unique=True)
    account_id: Mapped[str] = mapped_column(String(64), index=True)
    phase: Mapped[str] = mapped_column(String(40))
    status: Mapped[ApprovalStatus] = mapped_column(status_column(ApprovalStatus))
    requested_at: Mapped[datetime]
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[str | None] = mapped_column(String(100))
    reason: Mapped[str | None] = mapped_column(Text)
    # When ops were alerted that it waits too long (once per approval).
    alerted_at: Mapped[datetime | None]


class DaemonBeat(Base):
    """One live `lapse run` process and when it last said so (its heartbeat), whether it
    leads (runs syncs, brake decisions and wake-ups) and how many phases it runs."""

    __tablename__ = "daemons"

    id: Mapped[str] = mapped_column(String(120), primary_key=True)  # "host:pid:start"
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime]
    seen_at: Mapped[datetime]
    leader: Mapped[bool]
    running: Mapped[int] = mapped_column(Integer)
    # The leader's last successful billing sync, so that every daemon's /healthz can
    # judge the syncs, not only the leader's.
    last_sync: Mapped[datetime | None]


class BillingBlock(Base):
    """A run of billing rows as the last sync listed it (see daemon.billing.flat_blocks),
    with what a sync needs of its accounts when it passes over the run unchanged.

    Written in the sync's own transaction, and only for a run whose every readable
    account the sync stored as read from these rows; a run not met again is forgotten.
    """

    __tablename__ = "billing_blocks"

    # The id of the run's last account.
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    # The digest of the run's raw rows.
    digest: Mapped[str] = mapped_column(String(64))
    # The accounts the run lists that read well (a sync's `seen`).
    accounts: Mapped[int] = mapped_column(Integer)
    # The 64-bit hashes of each account's docroots, then of their ancestors (native
    # byte order, daemon.billing.overlap.TreeIndex.add_hashes).
    trees: Mapped[bytes] = mapped_column(LargeBinary)
    above: Mapped[bytes] = mapped_column(LargeBinary)
    # The run's malformed rows: [row number within the run, account id or null, field,
    # message], reported again at each sync that passes over the run.
    errors: Mapped[list[Any]] = mapped_column(JSON)
