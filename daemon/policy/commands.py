"""Operator commands on the lifecycle: hold, release, suspend, unsuspend and reactivate.
Pure, like the rules."""

from __future__ import annotations

from datetime import datetime

from daemon.domain.errors import LapseError
from daemon.domain.phases import Phase
from daemon.domain.states import SIDE_STATES, SUSPENDED_STATES, State
from daemon.policy.clock import pause, resume
from daemon.policy.model import Action, Decision, LifecycleRecord
from daemon.policy.rules import move


class CommandRefusedError(LapseError, ValueError):
    """The command does not fit the account's current state."""


def hold(
    record: LifecycleRecord,
    now: datetime,
    *,
    reason: str,
    until: datetime | None = None,
    legal: bool = False,
) -> Decision:
    """Put the account on an ops hold (or a legal hold): its clock stops.

    Returns the decision. Raises CommandRefusedError for a deleted account, a hold
    whose end is already past, or a legal hold given an end date (legal holds
    end only by an explicit release).
    """
    if record.state is State.DELETED:
        raise CommandRefusedError(
            f"account {record.account_id} is deleted; there is nothing to hold"
        )
    if until is not None and until <= now:
        raise CommandRefusedError(f"the hold's end {until.isoformat()} is not in the future")
    if legal and until is not None:
        raise CommandRefusedError("a legal hold has no end date; release it explicitly")
    into = State.LEGAL_HOLD if legal else State.ON_HOLD
    if record.state is State.LEGAL_HOLD and not legal:
        raise CommandRefusedError(
            "the account is under a legal hold; an ops hold cannot replace it"
        )
    after = pause(record, into, now, hold_reason=reason, hold_until=until)
    kind = "legal hold" if legal else "hold"
    return move(record, after, f"{kind}: {reason}")


def reject(
    record: LifecycleRecord, now: datetime, *, phase: str, back_to: State, reason: str
) -> Decision:
    """A person rejected the `phase` (delete or suspend) that waited for approval: the
    account goes back to `back_to`, the state the transition that queued the phase came
    from, and from there on an ops hold. Releasing the hold resumes the clock, and the
    phase, when due again, waits for approval again.

    Raises CommandRefusedError when the account is not in the state the phase left it in.
    """
    expected = {State.DELETED} if phase == Phase.DELETE else SUSPENDED_STATES
    if record.state not in expected:
        raise CommandRefusedError(
            f"account {record.account_id} is {record.label}, not waiting for its {phase}"
        )
    before = record.evolve(state=back_to)
    after = pause(before, State.ON_HOLD, now, hold_reason=f"{phase} rejected: {reason}")
    return move(record, after, f"{phase} rejected: {reason}")


def deletion_withdrawn(record: LifecycleRecord, now: datetime, *, back_to: State) -> Decision:
    """Billing shows the account paid while its deletion was queued and no step of it had
    started (daemon.lifecycle.unstarted_deletion withdrew it): the account goes back to
    `back_to`, the state the deletion left, from which a paid account is reactivated.

    Raises CommandRefusedError when the account is not deleted.
    """
    if record.state is not State.DELETED:
        raise CommandRefusedError(f"account {record.account_id} is {record.label}, not deleted")
    after = record.evolve(state=back_to)
    return move(record, after, "paid before the deletion began: the deletion is withdrawn")


def release(record: LifecycleRecord, now: datetime) -> Decision:
    """End an ops or legal hold; deadlines move forward by the time held.

    Raises CommandRefusedError when the account is not held.
    """
    if record.state not in (State.ON_HOLD, State.LEGAL_HOLD):
        raise CommandRefusedError(f"account {record.account_id} is {record.label}, not on hold")
    return move(record, resume(record, now), f"{record.state.value} released")


def suspend(record: LifecycleRecord, now: datetime, *, reason: str) -> Decision:
    """Suspend the account by an operator's decision, whatever its balance.

    The clock stops (no removal deadline runs while ops hold the site down) and the
    suspend phase runs unless the site is already suspended. No client notice is
    sent: the operator knows what to tell the client. Returns the decision. Raises
    CommandRefusedError for a deleted account, a failed deletion, a legal hold
    (release it first) or an account already suspended by ops.
    """
    refused = {
        State.DELETED: "is deleted",
        State.DELETE_FAILED: "failed its deletion; resolve that first (lapse retry)",
        State.LEGAL_HOLD: "is under a legal hold; release it first",
        State.OPS_SUSPENDED: "is already suspended by ops",
    }
    if record.state in refused:
        raise CommandRefusedError(f"account {record.account_id} {refused[record.state]}")
    after = pause(record, State.OPS_SUSPENDED, now, hold_reason=reason, hold_until=None)
    site_down = after.resume_state in SUSPENDED_STATES
    actions = () if site_down else (Action.run(Phase.SUSPEND),)
    return move(record, after, f"suspended by ops: {reason}", *actions)


def unsuspend(
    record: LifecycleRecord, now: datetime, *, reason: str = "", until: datetime | None = None
) -> Decision:
    """Bring a suspended account's site back by an operator's decision.

    An ops suspension ends and the account resumes where it was (its site comes
    back unless the policy had suspended it too). A suspension for non-payment is
    lifted into an ops hold with the site back: the client keeps it while the hold
    lasts (until release, or `until`), a payment reactivates the account as usual,
    and without one the suspension comes again when the hold ends. Returns the
    decision. Raises CommandRefusedError when the account is not suspended, or
    `until` is not in the future.
    """
    if until is not None and until <= now:
        raise CommandRefusedError(f"the hold's end {until.isoformat()} is not in the future")
    if record.state is State.OPS_SUSPENDED:
        if until is not None:
            raise CommandRefusedError("--until applies to a suspension for non-payment only")
        after = resume(record, now)
        site_down = after.state in SUSPENDED_STATES
        actions = () if site_down else (Action.run(Phase.UNSUSPEND),)
        why = "ops suspension lifted" + (f": {reason}" if reason else "")
        return move(record, after, why, *actions)
    if record.state in SUSPENDED_STATES or record.state is State.SUSPEND_FAILED:
        held = record.evolve(
            state=State.ON_HOLD,
            # Back to the final notice on release, due for suspension at once.
            resume_state=State.FINAL_NOTICE,
            paused_since=now,
            hold_reason=reason or "unsuspended by ops",
            hold_until=until,
            suspend_at=now,
            suspended_at=None,
            delete_at=None,
            warnings_sent=0,
            last_warning_at=None,
        )
        why = "unsuspended by ops, on hold" + (f": {reason}" if reason else "")
        return move(record, held, why, Action.run(Phase.UNSUSPEND))
    raise CommandRefusedError(f"account {record.account_id} is {record.label}, not suspended")


def reactivate(record: LifecycleRecord, now: datetime, *, reason: str) -> Decision:
    """Return the account to active after ops restored its site by hand.

    From a deleted account (or a failed deletion) nothing is queued: the restore
    put the files and databases back. From a suspension the unsuspend phase is
    queued, so the maintenance page and revoked logins are undone as after a
    payment. The record starts afresh: if billing still shows a debt, the
    lifecycle begins again from overdue. Returns the decision. Raises
    CommandRefusedError for an account that is neither deleted nor suspended, or
    under a legal hold.
    """
    stage = record.resume_state if record.state in SIDE_STATES else record.state
    if record.state is State.LEGAL_HOLD:
        raise CommandRefusedError(f"account {record.account_id} is under a legal hold")
    fresh = LifecycleRecord(account_id=record.account_id, last_contact_at=record.last_contact_at)
    if stage in (State.DELETED, State.DELETE_FAILED):
        return move(record, fresh, f"reactivated by ops after a restore: {reason}")
    if (
        stage in SUSPENDED_STATES
        or stage is State.SUSPEND_FAILED
        or record.state is State.OPS_SUSPENDED
    ):
        return move(
            record,
            fresh,
            f"reactivated by ops after a restore: {reason}",
            Action.run(Phase.UNSUSPEND),
        )
    raise CommandRefusedError(
        f"account {record.account_id} is {record.label}: only a deleted or suspended account"
        " is reactivated after a restore"
    )
