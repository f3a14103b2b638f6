"""Which client notice a finished playbook phase makes true (invariant 10).

The suspension and deletion notices tell the client what was done, so they are
queued only when the phase that did it finished: in the same transaction that
records the phase done, so a crash neither loses nor repeats them (invariant 4).
A phase that failed, was cancelled by a payment or was refused never gets here;
ops are alerted instead.

The reactivation notice says the site is online and logins work again. The
policy asks for it together with the unsuspend phase that makes it true, so the
lifecycle holds it back (`deferred_to`) until that phase finished.
"""

from __future__ import annotations

from collections.abc import Iterable

from daemon.domain.notice_kinds import NoticeKind
from daemon.domain.phases import Phase
from daemon.domain.states import SUSPENDED_STATES, State
from daemon.policy.model import Action

# Notices the policy asks for with a phase, which may only go out once it succeeded.
_AFTER_PHASE = {Phase.UNSUSPEND: NoticeKind.REACTIVATION}


def deferred_to(actions: Iterable[Action]) -> frozenset[NoticeKind]:
    """Return the notices among `actions` that wait for a phase run by the same
    decision (the reactivation notice waits for its unsuspend phase)."""
    actions = list(actions)
    phases = {action.phase for action in actions if action.phase is not None}
    waiting = {_AFTER_PHASE[phase] for phase in phases if phase in _AFTER_PHASE}
    return frozenset(a.notice for a in actions if a.notice is not None and a.notice in waiting)


def notice_after(phase: str, state: State, promised: Iterable[str] = ()) -> NoticeKind | None:
    """Return the notice a `phase` that just finished tells the client, given the
    account's `state` now and the actions (`promised`, as the event that queued the
    phase recorded them) of the decision behind it; None when there is nothing to tell.

    An operator's suspension (ops-suspended) sends none: the operator speaks to the
    client. A phase finishing in a state it no longer belongs to sends none either,
    nor an unsuspend that no payment asked for (an operator's unsuspend).
    """
    if phase == "suspend" and state in SUSPENDED_STATES:
        return NoticeKind.SUSPENSION
    if phase == "delete" and state is State.DELETED:
        return NoticeKind.DELETION
    if (
        phase == Phase.UNSUSPEND.value
        and str(Action.send(NoticeKind.REACTIVATION)) in promised
        and state not in SUSPENDED_STATES
        and state is not State.OPS_SUSPENDED
    ):
        return NoticeKind.REACTIVATION
    return None
