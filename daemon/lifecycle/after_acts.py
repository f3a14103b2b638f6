"""Which client notice a finished playbook phase makes true (invariant 10).

The suspension and deletion notices tell the client what was done, so they are
queued only when the phase that did it finished: in the same transaction that
records the phase done, so a crash neither loses nor repeats them (invariant 4).
A phase that failed, was cancelled by a payment or was refused never gets here;
ops are alerted instead.

The reactivation notice says the site is online and logins work again. The
policy asks for it together with the unsuspend phase that makes it true, so the
lifecycle holds it back (`deferred_to`) until that phase finished.

Which notice states which act is a fact of its kind (`NoticeFacts.after` in
daemon.domain.notice_kinds); this module only applies those facts.
"""

from __future__ import annotations

from collections.abc import Iterable

from daemon.domain.notice_kinds import NoticeKind
from daemon.domain.states import State
from daemon.policy.model import Action


def deferred_to(actions: Iterable[Action]) -> frozenset[NoticeKind]:
    """Return the notices among `actions` that wait for a phase run by the same
    decision: those stating the act that phase does (the reactivation notice waits
    for its unsuspend phase)."""
    actions = list(actions)
    phases = {action.phase for action in actions if action.phase is not None}
    return frozenset(
        action.notice
        for action in actions
        if action.notice is not None
        and action.notice.facts.after is not None
        and action.notice.facts.after.phase in phases
    )


def notices_after(phase: str, state: State, promised: Iterable[str] = ()) -> tuple[NoticeKind, ...]:
    """Return the notices a `phase` that just finished tells the client, in lifecycle
    order, given the account's `state` now and the actions (`promised`, as the event
    that queued the phase recorded them) of the decision behind it; empty when there is
    nothing to tell.

    Which notice states which act, and in which states it still holds, are the
    kinds' facts (`NoticeFacts.after`). An operator's suspension (ops-suspended) sends
    none: the operator speaks to the client. A phase finishing in a state it no longer
    belongs to sends none either, nor an unsuspend that no payment asked for (an
    operator's unsuspend).
    """
    asked = set(promised)
    return tuple(kind for kind in NoticeKind if _tells(kind, phase, state, asked))


def _tells(kind: NoticeKind, phase: str, state: State, asked: set[str]) -> bool:
    """Return whether `kind` states the act of `phase`, still true in `state`, and,
    when it goes out only if asked for, whether the decision (`asked`) asked for it."""
    act = kind.facts.after
    if act is None or act.phase != phase or state not in act.states:
        return False
    return not act.only_when_asked or str(Action.send(kind)) in asked
