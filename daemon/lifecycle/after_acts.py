"""Which client notice a finished playbook phase makes true (invariant 10).

The suspension and deletion notices tell the client what was done, so they are
queued only when the phase that did it finished: in the same transaction that
records the phase done, so a crash neither loses nor repeats them (invariant 4).
A phase that failed, was cancelled by a payment or was refused never gets here;
ops are alerted instead.
"""

from __future__ import annotations

from daemon.policy.model import SUSPENDED_STATES, NoticeKind, State


def notice_after(phase: str, state: State) -> NoticeKind | None:
    """Return the notice a `phase` that just finished tells the client, given the
    account's `state` now; None when there is nothing to tell.

    An operator's suspension (ops-suspended) sends none: the operator speaks to the
    client. A phase finishing in a state it no longer belongs to sends none either.
    """
    if phase == "suspend" and state in SUSPENDED_STATES:
        return NoticeKind.SUSPENSION
    if phase == "delete" and state is State.DELETED:
        return NoticeKind.DELETION
    return None
