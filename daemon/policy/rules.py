"""The lifecycle rules, one function per concern.

Each rule takes (snapshot, record, policy, now) and returns a Decision when it
applies, or None to let the next rule look. Pure: no I/O, no clock reads.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from daemon.config.schema import PolicyConfig
from daemon.domain.notice_kinds import NoticeKind
from daemon.domain.phases import Phase
from daemon.domain.snapshot import AccountSnapshot, Invoice
from daemon.domain.states import DUNNING_STATES, SIDE_STATES, SUSPENDED_STATES, State
from daemon.policy.clock import pause, resume
from daemon.policy.instants import (
    removal_after_late_warning,
    removal_instant,
    suspension_instant,
    warning_due,
)
from daemon.policy.model import Action, Decision, LifecycleRecord
from daemon.policy.window import next_contact_time

# A suspension this much after its announced instant gets a fresh removal period.
_LATE = timedelta(hours=1)
# A final notice accepted this much after it was composed still keeps its instant: the
# suspension then follows within the minute the notice names.
_ACCEPT_SLACK = timedelta(minutes=1)


def owes(snapshot: AccountSnapshot, policy: PolicyConfig) -> bool:
    """Return whether the account owes at least the policy's minimum balance."""
    return snapshot.balance >= policy.min_balance


def stay(record: LifecycleRecord, reason: str, wake_at: datetime | None = None) -> Decision:
    """A decision that changes nothing."""
    return Decision(record=record, from_state=record.state, reason=reason, wake_at=wake_at)


def move(
    before: LifecycleRecord, after: LifecycleRecord, reason: str, *actions: Action
) -> Decision:
    """A decision that changes the record (a transition when the state differs)."""
    return Decision(
        record=after, from_state=before.state, reason=reason, actions=actions, changed=True
    )


def ops_suspension(
    snap: AccountSnapshot, record: LifecycleRecord, policy: PolicyConfig, now: datetime
) -> Decision | None:
    """Suspended by an operator: nothing moves it, not even a payment, until unsuspended.

    The operator may have suspended for a reason billing knows nothing about (abuse,
    a compromised site), so a payment must not bring the site back on its own.
    """
    if record.state is not State.OPS_SUSPENDED:
        return None
    return stay(record, f"suspended by ops: {record.hold_reason or 'no reason given'}")


def holds(
    snap: AccountSnapshot, record: LifecycleRecord, policy: PolicyConfig, now: datetime
) -> Decision | None:
    """An ops hold or legal hold: the clock stands still until release or `hold_until`."""
    if record.state not in (State.ON_HOLD, State.LEGAL_HOLD):
        return None
    if record.hold_until is not None and now >= record.hold_until:
        return move(record, resume(record, now), f"hold ended at {_iso(record.hold_until)}")
    if not owes(snap, policy) and record.resume_state is not State.ACTIVE:
        if record.state is State.ON_HOLD:
            return reactivate(record, now, "paid in full during an ops hold")
        # A legal hold keeps the data frozen, but a paying client gets the site back.
        actions = _reactivation_actions(record.resume_state)
        cleared = _fresh(record).evolve(
            state=State.LEGAL_HOLD,
            resume_state=State.ACTIVE,
            paused_since=now,
            hold_reason=record.hold_reason,
        )
        return move(record, cleared, "paid in full during a legal hold; hold kept", *actions)
    return stay(record, f"held: {record.hold_reason or 'no reason given'}", record.hold_until)


def exemption(
    snap: AccountSnapshot, record: LifecycleRecord, policy: PolicyConfig, now: datetime
) -> Decision | None:
    """The billing system's "never suspend" flag pauses everything while set."""
    if snap.exempt and record.state is not State.EXEMPT:
        return move(record, pause(record, State.EXEMPT, now), "billing marks the account exempt")
    if record.state is State.EXEMPT:
        if snap.exempt:
            return stay(record, "exempt from the lifecycle by the billing system")
        return move(record, resume(record, now), "billing no longer marks the account exempt")
    return None


def payment(
    snap: AccountSnapshot, record: LifecycleRecord, policy: PolicyConfig, now: datetime
) -> Decision | None:
    """Paid in full (below the minimum balance): back to active from any stage before deletion."""
    if owes(snap, policy):
        return None
    if record.state is State.ACTIVE:
        return stay(record, "nothing owed")
    reason = "paid in full"
    if record.state is State.FINAL_NOTICE and record.suspend_at is not None:
        reason += f"; suspension planned for {_iso(record.suspend_at)} cancelled"
    return reactivate(record, now, reason)


def reactivate(record: LifecycleRecord, now: datetime, reason: str) -> Decision:
    """Return to active, undoing a suspension (by the unsuspend phase) if there was one."""
    stage = record.resume_state if record.state in SIDE_STATES else record.state
    actions = _reactivation_actions(stage)
    return move(record, _fresh(record), reason, *actions)


def payment_plan(
    snap: AccountSnapshot, record: LifecycleRecord, policy: PolicyConfig, now: datetime
) -> Decision | None:
    """Instalments agreed in billing pause the clock; a missed one resumes it."""
    unpaid = [i for i in snap.instalments if not i.paid]
    missed = [i for i in unpaid if i.due_at + policy.instalment_grace <= now]
    if record.state is State.PAYMENT_PLAN:
        if missed:
            first = missed[0]
            why = f"instalment of {first.amount} {snap.currency} due {_iso(first.due_at)} missed"
            return move(record, resume(record, now), why)
        if not unpaid:
            return move(record, resume(record, now), "every instalment paid, balance remains")
        next_check = min(i.due_at for i in unpaid) + policy.instalment_grace
        return stay(record, "payment plan in good standing", next_check)
    if unpaid and not missed and record.state in DUNNING_STATES | SUSPENDED_STATES:
        after = pause(record, State.PAYMENT_PLAN, now)
        return move(
            record, after, "payment plan agreed in billing", Action.send(NoticeKind.PAYMENT_PLAN)
        )
    return None


def timeline(
    snap: AccountSnapshot, record: LifecycleRecord, policy: PolicyConfig, now: datetime
) -> Decision:
    """The main line: overdue, reminders, final notice, suspension, warnings, deletion."""
    if record.state is State.ACTIVE:
        return _start_clock(snap, record, policy, now)
    zone = snap.contact.timezone
    if record.state in (State.OVERDUE, State.REMINDED):
        return _dun(record, policy, now, zone)
    if record.state is State.FINAL_NOTICE:
        return _suspend_when_due(record, policy, now, zone)
    if record.state in SUSPENDED_STATES:
        return _remove_when_due(record, policy, now, zone)
    if record.state is State.SUSPEND_FAILED:
        return stay(record, "suspension failed on the host; waiting for ops (lapse retry)")
    return stay(record, f"no rule moves an account in state {record.state}")


def _start_clock(
    snap: AccountSnapshot, record: LifecycleRecord, policy: PolicyConfig, now: datetime
) -> Decision:
    oldest = _oldest_open(snap)
    if oldest is None:
        return stay(record, "balance owed but no open invoice has a due date")
    if oldest.due_at > now:
        return stay(record, f"invoice {oldest.id} not due yet", oldest.due_at)
    start = oldest.due_at
    if snap.created_at is not None:
        start = max(start, snap.created_at + policy.new_account_grace)
    after = record.evolve(state=State.OVERDUE, clock_start=start)
    reason = (
        f"invoice {oldest.id} ({oldest.amount_due} {oldest.currency}) "
        f"due {_iso(oldest.due_at)} is unpaid"
    )
    return move(record, after, reason)


def _dun(record: LifecycleRecord, policy: PolicyConfig, now: datetime, zone: str) -> Decision:
    start = record.clock_start or now
    final_due = start + policy.final_notice_offset
    # An account first seen past the final-notice day still gets one reminder, and the
    # minimum gap after it, before its final notice: no final notice out of the blue.
    reminder_owed = bool(policy.reminder_offsets) and record.reminders_sent == 0
    upcoming = _reminders_left(start, record, policy)
    final = now >= final_due and not reminder_owed
    reminder = (bool(upcoming) and upcoming[0] <= now) or (now >= final_due and reminder_owed)
    if not final and not reminder:
        return stay(
            record,
            "waiting for the next contact",
            _ready(min([*upcoming, final_due]), record, policy, zone),
        )
    ready = _ready(now, record, policy, zone)
    if now < ready:
        return stay(record, _waiting_reason(record, policy, now), ready)
    if final:
        # The instants the notice names are computed here, once, and kept (invariant 3).
        suspend_at = suspension_instant(now, policy, zone)
        delete_at = removal_instant(suspend_at, policy, zone)
        # final_notice_at stays empty until the mail server accepts the notice (see
        # accept_final_notice): no suspension on a notice the client never got.
        after = record.evolve(
            state=State.FINAL_NOTICE,
            final_notice_at=None,
            suspend_at=suspend_at,
            delete_at=delete_at,
            last_contact_at=now,
        )
        reason = (
            f"final notice due; suspension set for {_iso(suspend_at)}, "
            f"deletion for {_iso(delete_at)}"
        )
        return move(record, after, reason, Action.send(NoticeKind.FINAL))
    # Numbered by the reminders actually sent, so no reminder claims an earlier one.
    number = record.reminders_sent + 1
    after = record.evolve(state=State.REMINDED, reminders_sent=number, last_contact_at=now)
    reason = f"reminder {number} of at most {len(policy.reminder_offsets)} due"
    return move(record, after, reason, Action.send(NoticeKind.REMINDER, number))


def _reminders_left(
    start: datetime, record: LifecycleRecord, policy: PolicyConfig
) -> list[datetime]:
    """Return when the reminders still to send are due, in order: the offsets past the
    ones already used, and only those after the last contact (older ones are skipped,
    not sent late)."""
    last = record.last_contact_at
    return [
        start + offset
        for offset in policy.reminder_offsets[record.reminders_sent :]
        if last is None or start + offset > last
    ]


def _suspend_when_due(
    record: LifecycleRecord, policy: PolicyConfig, now: datetime, zone: str
) -> Decision:
    if record.suspend_at is None:
        return stay(record, "no final notice on record, so no suspension")
    if record.final_notice_at is None:
        return stay(record, "no suspension until the mail server has accepted the final notice")
    # Never earlier than announced; later only to keep the gap and the contact hours.
    earliest = _ready(
        max(record.suspend_at, record.final_notice_at + policy.notice_period),
        record,
        policy,
        zone,
    )
    if now < earliest:
        return stay(record, f"notice period runs until {_iso(earliest)}", earliest)
    delete_at = record.delete_at
    if delete_at is None or now - record.suspend_at > _LATE:
        # Suspended long after the announced instant (downtime, a late-accepted notice):
        # the client keeps the whole removal period from now.
        delete_at = removal_instant(now, policy, zone)
    after = record.evolve(
        state=State.SUSPENDED,
        suspended_at=now,
        delete_at=delete_at,
        warnings_sent=0,
        last_contact_at=now,
    )
    reason = (
        f"notice period since the final notice of {_iso(record.final_notice_at)} ended; "
        f"deletion set for {_iso(delete_at)}"
    )
    # The suspension notice goes out once the suspend phase succeeded (invariant 10).
    return move(record, after, reason, Action.run(Phase.SUSPEND))


def _remove_when_due(
    record: LifecycleRecord, policy: PolicyConfig, now: datetime, zone: str
) -> Decision:
    delete_at = record.delete_at or now
    warnings = policy.removal_warnings
    dues = [warning_due(delete_at, lead, policy, zone) for lead in warnings]
    due = [i for i, at in enumerate(dues) if at <= now]
    warning = due[-1] if due and due[-1] >= record.warnings_sent else None
    if warning is not None:
        ready = _ready(now, record, policy, zone)
        if now < ready:
            return stay(record, _waiting_reason(record, policy, now), ready)
        number = warning + 1
        lead = warnings[warning]
        if now + lead > delete_at:
            # Sent too late for its full lead (downtime, the gap): the warning names a
            # later deletion, and that is the one kept.
            delete_at = removal_after_late_warning(now, lead, policy, zone)
        after = record.evolve(
            state=State.REMOVAL_WARNED,
            warnings_sent=number,
            delete_at=delete_at,
            last_contact_at=now,
            last_warning_at=now,
        )
        reason = f"removal warning {number} of {len(warnings)}: deletion on {_iso(delete_at)}"
        return move(record, after, reason, Action.send(NoticeKind.REMOVAL_WARNING, number))
    # The last warning always gets its full lead time (a late one moved delete_at above).
    earliest = delete_at
    if warnings and record.last_warning_at is not None:
        earliest = max(earliest, record.last_warning_at + warnings[-1])
    earliest = _ready(earliest, record, policy, zone)
    if now < earliest:
        upcoming = dues[record.warnings_sent :]
        return stay(record, f"deletion set for {_iso(earliest)}", min([*upcoming, earliest]))
    after = record.evolve(state=State.DELETED, last_contact_at=now)
    reason = f"removal period since suspension on {_iso(record.suspended_at)} ended"
    # The deletion notice goes out once the delete phase succeeded (invariant 10).
    return move(record, after, reason, Action.run(Phase.DELETE))


def _reactivation_actions(state: State | None) -> tuple[Action, ...]:
    # A failed suspension may have done part of its work: unsuspend undoes that part.
    if state in SUSPENDED_STATES or state is State.SUSPEND_FAILED:
        return (Action.run(Phase.UNSUSPEND), Action.send(NoticeKind.REACTIVATION))
    return ()


def _fresh(record: LifecycleRecord) -> LifecycleRecord:
    """A clean active record that remembers only when the client was last contacted."""
    return LifecycleRecord(account_id=record.account_id, last_contact_at=record.last_contact_at)


def _oldest_open(snap: AccountSnapshot) -> Invoice | None:
    open_invoices = [invoice for invoice in snap.invoices if invoice.amount_due > 0]
    return min(open_invoices, key=lambda invoice: invoice.due_at) if open_invoices else None


def _gap_end(record: LifecycleRecord, policy: PolicyConfig) -> datetime | None:
    if record.last_contact_at is None:
        return None
    return record.last_contact_at + policy.min_contact_gap


def _not_before_gap(moment: datetime, record: LifecycleRecord, policy: PolicyConfig) -> datetime:
    gap_end = _gap_end(record, policy)
    return max(moment, gap_end) if gap_end is not None else moment


def _ready(moment: datetime, record: LifecycleRecord, policy: PolicyConfig, zone: str) -> datetime:
    """Return the first time at or after `moment` the client may be contacted: the minimum
    gap since the last contact has passed, and it is a contact day outside quiet hours in
    the client's time zone."""
    return next_contact_time(_not_before_gap(moment, record, policy), zone, policy)


def _waiting_reason(record: LifecycleRecord, policy: PolicyConfig, now: datetime) -> str:
    gap_end = _gap_end(record, policy)
    if gap_end is not None and now < gap_end:
        return "contact due, keeping the minimum gap since the last one"
    return "contact due, waiting for the client's contact hours"


def accept_final_notice(record: LifecycleRecord, accepted_at: datetime) -> LifecycleRecord:
    """Return the record once the final notice was accepted by the mail server (or written
    to the outbox) at `accepted_at`: the notice period runs from then. Unchanged when the
    account is not waiting for that acceptance."""
    if record.state is not State.FINAL_NOTICE or record.final_notice_at is not None:
        return record
    return record.evolve(final_notice_at=accepted_at)


def late_final_notice(
    record: LifecycleRecord, accepted_at: datetime, policy: PolicyConfig, zone: str
) -> LifecycleRecord | None:
    """Return the record with its suspension and removal instants moved when the final
    notice was accepted too late for the notice period to end by the instant it names
    (more than a minute late: the mail server deferred it); None when it holds.

    Invariant 3 wins over the printed instant: no suspension without the full notice
    period. The caller tells ops, since the client's notice names the earlier instant.
    """
    if record.suspend_at is None or accepted_at + policy.notice_period <= (
        record.suspend_at + _ACCEPT_SLACK
    ):
        return None
    suspend_at = suspension_instant(accepted_at, policy, zone)
    return record.evolve(suspend_at=suspend_at, delete_at=removal_instant(suspend_at, policy, zone))


def _iso(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment is not None else "?"
