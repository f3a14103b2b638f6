"""The lifecycle engine: billing snapshots in, recorded decisions out.

It reads snapshots, asks the pure policy for decisions, and records each one
atomically with its event, its queued notices and its playbook actions, so a
crash at any point neither repeats nor skips a transition (invariant 4).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, cast

import structlog
from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session, defer, sessionmaker

from daemon.billing.base import BillingSource
from daemon.config.schema import PolicyConfig, policy_for_plan
from daemon.domain.clock import Clock, system_clock
from daemon.domain.errors import UnknownAccountError
from daemon.domain.phases import Phase
from daemon.domain.snapshot import AccountSnapshot
from daemon.domain.states import ActionStatus, State
from daemon.domain.stored_snapshot import snapshot_digest, snapshot_to_json
from daemon.lifecycle.actions import queue_playbook
from daemon.lifecycle.after_acts import deferred_to, notices_after
from daemon.lifecycle.brake import SafetyBrake
from daemon.lifecycle.report import SyncReport
from daemon.lifecycle.sync_pass import Due, Plan, run_pass
from daemon.lifecycle.unstarted_deletion import withdraw_unstarted_deletion
from daemon.notices.desk import NoticeDesk
from daemon.notices.money import minor_unit
from daemon.policy import Action, Decision, LifecycleRecord, commands, decide
from daemon.policy.rules import owes
from daemon.store.membership import one_of
from daemon.store.models import Account, Event, ScheduledAction
from daemon.store.records import record_columns, record_from_row, stored_snapshot, write_record
from daemon.store.versioned_writes import write_changed

# SyncReport lives in daemon.lifecycle.report (the sync pass uses it too); callers
# still find it here.
__all__ = ["LifecycleEngine", "SyncReport"]

log = structlog.get_logger("lapse.lifecycle")

# One evaluation applies at most this many chained transitions; the policy
# never needs more than four in a row (active -> overdue -> reminded -> ...).
_MAX_STEPS = 8
# A sync starts over when the brake trips, accounts turn out to share a tree, or billing
# recalls accounts (see daemon.lifecycle.sync_pass); each can happen once.
_MAX_PASSES = 4

# The accounts table, for the bulk insert of new accounts at rest.
_accounts = cast(Table, Account.__table__)


# How soon a braked wake-up looks at its account again.
_BRAKED_RETRY = timedelta(hours=1)


class LifecycleEngine:
    """Applies the policy to accounts and records what it decided."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        policies: Mapping[str, PolicyConfig],
        billing: BillingSource,
        notices: NoticeDesk,
        brake: SafetyBrake,
        clock: Clock = system_clock,
    ) -> None:
        """Take the state database, the `[policy]` tables by plan, the billing source,
        the notice desk (whose late-final-notice check gets this engine's policies), the
        safety brake and the clock."""
        self.sessions = sessions
        self.policies = policies
        self.billing = billing
        self.notices = notices
        self.brake = brake
        self.clock = clock
        self._policies: dict[str, PolicyConfig] = {}
        # While a sync batch is evaluated: the phases its transitions queue, held until
        # the batch's events are written and have their ids.
        self._phases: list[tuple[str, list[Phase], Event]] | None = None
        # The accounts the last sync refused for sharing a tree (see sync_pass.Plan.held).
        self._refused: frozenset[str] = frozenset()
        notices.policy_for = self.policy_for

    def policy_for(self, plan: str) -> PolicyConfig:
        """Return the effective policy for `plan` (cached: plans are few, accounts many)."""
        if plan not in self._policies:
            self._policies[plan] = policy_for_plan(self.policies, plan)
        return self._policies[plan]

    def sync(self) -> SyncReport:
        """Read every account from billing and apply the policy to each.

        The accounts stream past a batch at a time (see daemon.lifecycle.sync_pass), in
        one transaction. Returns a SyncReport. Raises BillingError when billing cannot
        be read: then nothing is changed.
        """
        plan = Plan(held=self._refused)
        for _ in range(_MAX_PASSES):
            now = self.clock()
            report = SyncReport()
            with self.sessions() as session, session.begin():
                outcome = run_pass(self, session, plan, now, report)
                if outcome.again is not None:
                    session.rollback()
                    plan = outcome.again
                    continue
            break
        else:
            raise RuntimeError(f"a billing sync started over {_MAX_PASSES} times")
        outcome.errors.sort(key=lambda refused: refused.order)
        errors = tuple(refused.error for refused in outcome.errors)
        report.seen = outcome.seen
        report.row_errors = errors + tuple(plan.refused.values())
        self._refused = frozenset(plan.refused)
        for error in report.row_errors:
            log.error(
                "billing row skipped",
                source=error.source,
                row=error.row,
                field=error.field,
                problem=error.message,
            )
        self.notices.deliver_pending()
        log.info("billing sync done", summary=report.summary())
        return report

    def turns_overdue(self, snapshot: AccountSnapshot, now: datetime) -> bool:
        """Whether an active account would turn overdue with this snapshot.

        New accounts never count for the brake: a first sync of an existing
        customer base is no anomaly.
        """
        fresh = LifecycleRecord(account_id=snapshot.account_id)
        decision = decide(snapshot, fresh, self.policy_for(snapshot.plan), now)
        return decision.to_state is State.OVERDUE

    def wake(self, account_id: str, actor: str = "wake-up") -> SyncReport:
        """Evaluate one account at its deadline, with a fresh read of its billing data.

        Returns a SyncReport for that account. Raises BillingError when billing
        cannot be read (nothing is changed then).
        """
        snapshot = self.billing.fetch_one(account_id)
        now = self.clock()
        report = SyncReport(seen=1 if snapshot else 0)
        with self.sessions.begin() as session:
            row = session.get(Account, account_id)
            if row is None:
                if snapshot is None:
                    return report
                row = self._new_row(session, snapshot, now)
            if (
                snapshot is not None
                and owes(snapshot, self.policy_for(snapshot.plan))
                and self.brake.status() is not None
            ):
                # Braked: an owing account waits; look again in an hour.
                report.braked = True
                report.wakeups[account_id] = now + _BRAKED_RETRY
                return report
            self._evaluate(session, row, snapshot, now, actor, report)
            # The caller re-arms this account's wake-up whether or not it moved.
            report.wakeups[account_id] = row.next_wake_at
        self.notices.deliver_pending()
        return report

    def apply_command(
        self, account_id: str, command: Any, actor: str, **arguments: Any
    ) -> Decision:
        """Apply an operator command (hold, release) to an account, then re-evaluate it.

        `command` is a pure function (record, now, **arguments) -> Decision from
        daemon.policy.commands. Returns the command's decision. Raises
        UnknownAccountError for an account never synced, and ValueError (from
        the command) when the command does not fit the account's state.
        """
        now = self.clock()
        with self.sessions.begin() as session:
            row = session.get(Account, account_id)
            if row is None:
                raise UnknownAccountError(f"no account {account_id!r} in the state database")
            decision: Decision = command(record_from_row(row), now, **arguments)
            self._record(session, row, decision, now, actor, None)
            report = SyncReport()
            self._evaluate(session, row, stored_snapshot(row), now, actor, report)
        self.notices.deliver_pending()
        return decision

    def mark(self, account_id: str, state: State, reason: str, actor: str) -> None:
        """Record that the hosts put the account in `state` (e.g. suspend-failed), as an
        event with `reason`. Raises UnknownAccountError."""
        now = self.clock()
        with self.sessions.begin() as session:
            row = session.get(Account, account_id)
            if row is None:
                raise UnknownAccountError(f"no account {account_id!r} in the state database")
            record = record_from_row(row)
            decision = Decision(
                record=record.evolve(state=state), from_state=record.state, reason=reason
            )
            self._record(session, row, decision, now, actor, None)

    def phase_done(self, action_id: int) -> None:
        """Record the queued phase `action_id` done and, in the same transaction, queue
        the client notices its success makes true (see daemon.lifecycle.after_acts), then
        deliver them. A notice that offers a download offers the backup that phase took."""
        now = self.clock()
        with self.sessions.begin() as session:
            action = session.get(ScheduledAction, action_id)
            assert action is not None
            action.status, action.error, action.updated_at = ActionStatus.DONE, None, now
            row = session.get(Account, action.account_id)
            snapshot = stored_snapshot(row) if row is not None else None
            queued_by = session.get(Event, action.event_id) if action.event_id else None
            promised = (queued_by.details or {}).get("actions", []) if queued_by else []
            if row is not None and snapshot is not None:
                for kind in notices_after(action.name, State(row.state), promised):
                    self.notices.queue(
                        session,
                        snapshot,
                        record_from_row(row),
                        self.policy_for(row.plan),
                        Action.send(kind),
                        now,
                        backup_since=action.created_at,
                    )
        self.notices.deliver_pending()

    def note(self, account_id: str, reason: str, details: dict[str, Any], actor: str) -> None:
        """Append an event that records something done without a change of state (e.g. the
        deletion record: what was removed, and which backup holds it)."""
        now = self.clock()
        with self.sessions.begin() as session:
            row = session.get(Account, account_id)
            if row is None:
                raise UnknownAccountError(f"no account {account_id!r} in the state database")
            session.add(
                Event(
                    account_id=account_id,
                    at=now,
                    from_state=row.state,
                    to_state=row.state,
                    reason=reason,
                    actor=actor,
                    details=details,
                )
            )
        log.info("recorded", account=account_id, reason=reason, actor=actor)

    def evaluate_batch(
        self,
        session: Session,
        due: list[Due],
        now: datetime,
        report: SyncReport,
    ) -> None:
        """Evaluate the accounts of one sync batch that changed or reached a deadline.

        Only their rows are loaded, and they leave the session once written, so a
        sync holds one batch of rows in memory at a time.
        """
        if not due:
            return
        ids = [entry.snapshot.account_id for entry in due]
        rows = {
            row.id: row
            for row in session.scalars(
                select(Account)
                .options(defer(Account.snapshot))
                .where(one_of(session, _accounts.c.id, ids))
            )
        }
        # New accounts the policy leaves where they start (most of a first sync) are
        # inserted in one statement, without an ORM object each, and through the table
        # (Core), not the ORM's bulk insert, which sorts and checks each row's values
        # for the mapper first.
        resting: list[dict[str, Any]] = []
        # The batch's events are written in one flush; the phases they queue then refer
        # to them, in the order they were decided.
        self._phases = []
        try:
            for entry in due:
                snapshot = entry.snapshot
                row = rows.get(snapshot.account_id)
                if row is None:
                    values = self._resting_row(snapshot, entry, now, report)
                    if values is not None:
                        resting.append(values)
                        continue
                    row = self._new_row(session, snapshot, now)
                self._evaluate(session, row, snapshot, now, "billing-sync", report, entry)
            if resting:
                session.execute(insert(_accounts), resting)
            # On PostgreSQL the changed accounts go in an executemany per shape, each row
            # version-checked; the ORM's flush would make a round trip of each.
            write_changed(session, rows.values())
            session.flush()
            for account_id, phases, event in self._phases:
                for phase in phases:
                    queue_playbook(session, account_id, phase, event.id, now)
        finally:
            self._phases = None
        session.flush()
        session.expunge_all()

    def _resting_row(
        self, snapshot: AccountSnapshot, read: Due, now: datetime, report: SyncReport
    ) -> dict[str, Any] | None:
        """Return the accounts-table row of a new account on which the policy takes no
        step (what `_new_row` and `_evaluate` would write for it), or None when it does."""
        record = LifecycleRecord(account_id=snapshot.account_id)
        decision = decide(snapshot, record, self.policy_for(snapshot.plan), now)
        if decision.changed:
            return None
        if decision.wake_at is not None:
            report.wakeups[snapshot.account_id] = decision.wake_at
        return {
            "id": snapshot.account_id,
            "plan": snapshot.plan,
            "state": State.ACTIVE.value,
            **record_columns(record),
            "next_wake_at": decision.wake_at,
            "balance": snapshot.balance,
            "currency": snapshot.currency,
            "snapshot": read.data,
            "snapshot_hash": read.digest,
            "billing_digest": read.billing_digest,
            "billing_block": read.block,
            "first_seen_at": now,
            "updated_at": now,
            "version": 1,
        }

    def _evaluate(
        self,
        session: Session,
        row: Account,
        snapshot: AccountSnapshot | None,
        now: datetime,
        actor: str,
        report: SyncReport,
        read: Due | None = None,
    ) -> None:
        """Store the snapshot if it changed (with what the sync `read` of it, if given),
        then apply the policy until it rests."""
        # What was owed before this snapshot: a payment's event records it as recovered.
        owed_before, currency = row.balance, row.currency
        if snapshot is not None:
            self._store_snapshot(row, snapshot, now, read)
        record = record_from_row(row)
        policy = self.policy_for(row.plan)
        if record.state is State.DELETED and snapshot is not None and not owes(snapshot, policy):
            # Paid before the deletion began: it is withdrawn, and the policy below
            # reactivates the account from the state the deletion left.
            back_to = withdraw_unstarted_deletion(session, row.id, now)
            if back_to is not None:
                withdrawn = commands.deletion_withdrawn(record, now, back_to=back_to)
                self._record(session, row, withdrawn, now, actor, snapshot)
                record = withdrawn.record
        decision = decide(snapshot, record, policy, now)
        for _ in range(_MAX_STEPS):
            if not decision.changed:
                break
            paid = None
            if decision.reason.startswith("paid in full") and owed_before:
                settled = owed_before.quantize(minor_unit(currency))
                paid = {"recovered": str(settled), "currency": currency}
            self._record(session, row, decision, now, actor, snapshot, paid)
            report.transitions[decision.to_state.value] += 1
            decision = decide(snapshot, decision.record, policy, now)
        if row.next_wake_at != decision.wake_at:
            row.next_wake_at = decision.wake_at
            report.wakeups[row.id] = decision.wake_at

    def _record(
        self,
        session: Session,
        row: Account,
        decision: Decision,
        now: datetime,
        actor: str,
        snapshot: AccountSnapshot | None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Write one decision (record, event, actions) in the caller's transaction;
        `extra` goes into the event's details (e.g. the amount a payment recovered)."""
        write_record(row, decision.record)
        row.updated_at = now
        event = Event(
            account_id=row.id,
            at=now,
            from_state=decision.from_state.value,
            to_state=decision.to_state.value,
            reason=decision.reason,
            actor=actor,
            details={
                "label": decision.record.label,
                "actions": [str(a) for a in decision.actions],
                **(extra or {}),
            },
        )
        session.add(event)
        phases = [a.phase for a in decision.actions if a.kind == "playbook" and a.phase]
        if phases and self._phases is not None:
            self._phases.append((row.id, phases, event))
        elif phases:
            session.flush()  # gives the event its id for the rows that refer to it
            for phase in phases:
                queue_playbook(session, row.id, phase, event.id, now)
        # A notice that states what a phase of this decision does waits for that phase
        # (phase_done sends it once the phase succeeded, invariant 10).
        waiting = deferred_to(decision.actions)
        for action in decision.actions:
            if action.notice is not None and snapshot is not None:
                if action.notice in waiting:
                    continue
                policy = self.policy_for(row.plan)
                self.notices.queue(session, snapshot, decision.record, policy, action, now)
        log.info(
            "transition",
            account=row.id,
            from_state=decision.from_state.value,
            to_state=decision.record.label,
            reason=decision.reason,
            actor=actor,
            actions=[str(a) for a in decision.actions],
        )

    @staticmethod
    def _new_row(session: Session, snapshot: AccountSnapshot, now: datetime) -> Account:
        row = Account(
            id=snapshot.account_id,
            plan=snapshot.plan,
            state=State.ACTIVE.value,
            reminders_sent=0,
            warnings_sent=0,
            balance=snapshot.balance,
            currency=snapshot.currency,
            snapshot={},
            snapshot_hash="",
            first_seen_at=now,
            updated_at=now,
        )
        session.add(row)
        return row

    @staticmethod
    def _store_snapshot(
        row: Account, snapshot: AccountSnapshot, now: datetime, read: Due | None = None
    ) -> None:
        """Store `snapshot` with `row` when it differs from the one stored. `read` is
        what a sync made of it (its JSON, digest and the digest of the raw data it was
        read from); without it (a wake-up's fresh read) they are computed, and the raw
        digest is cleared when the snapshot changed."""
        data = read.data if read is not None else snapshot_to_json(snapshot)
        digest = read.digest if read is not None else snapshot_digest(data)
        billing_digest = read.billing_digest if read is not None else None
        if read is not None and row.billing_block != read.block:
            row.billing_block = read.block
        if digest == row.snapshot_hash:
            if billing_digest is not None and row.billing_digest != billing_digest:
                row.billing_digest = billing_digest
            return
        row.snapshot, row.snapshot_hash, row.billing_digest = data, digest, billing_digest
        row.plan, row.balance, row.currency = snapshot.plan, snapshot.balance, snapshot.currency
        row.updated_at = now
