"""The client notices the lifecycle sends, each defined once with every fact the code needs.

A notice kind is one member of `NoticeKind`. Its value names it everywhere: the
`--type` of `lapse notices preview`, the `notice` column of the correspondence
log, the `X-Lapse-Notice` header, the keys of `lapse report --json`, and the base
name of its two templates. Its `NoticeFacts` say how the rest of Lapse treats it.
No other module keeps a table of kinds or branches on one kind: each asks a kind
for its facts (tests/unit/test_notice_kinds.py fails on a module that keeps one).

How to add a notice kind
------------------------
1. Add a member to `NoticeKind` below, `NAME = "value", NoticeFacts(...)`, with
   the facts that hold for it; each field of `NoticeFacts` says what it changes.
   Members stand in the order the lifecycle sends them, which is the order the
   reports list them in. The value is at most 30 characters (the correspondence
   log's column).
2. Write `daemon/templates/notices/<value>.txt`, whose `subject` block is the
   Subject header, and `<value>.html`. Both extend `base`; the variables they may
   use are listed in daemon/templates/notices/README.md.
3. Say when it goes out. A notice that tells the client a playbook phase
   succeeded goes out by its facts alone (`after`). Any other notice is sent by
   the policy rule that decides when in the lifecycle it is due
   (daemon/policy/rules.py, `Action.send(NoticeKind.NAME)`): that is lifecycle
   behaviour, not vocabulary.

Then `.venv/bin/pytest tests/unit/test_notice_kinds.py tests/unit/test_notice_rendering.py`
checks that its templates exist, that it renders, and that no other module
keeps a fact about a kind. A kind that asks for money adds its column to
`lapse report`, whose exact output tests/lab/test_reports.py states.

This module imports nothing of Lapse outside the domain vocabulary and does no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from daemon.domain.phases import Phase
from daemon.domain.states import SUSPENDED_STATES, State

# The lifecycle record's deadlines a notice can name (fields of LifecycleRecord).
Deadline = Literal["suspend_at", "delete_at"]


@dataclass(frozen=True, slots=True)
class AfterAct:
    """The act a notice tells the client about, which it may only follow (invariant 10).

    The notice goes out once the playbook `phase` that does the act finished, in the
    same transaction that records the phase done (invariant 4), and only when the
    account is then in one of `states`: a phase that finished in a state it no longer
    belongs to tells nothing. With `only_when_asked`, only a decision that asked for
    the notice together with the phase sends it (held back until the phase finished);
    without it, the phase's success alone does.
    """

    phase: Phase
    states: frozenset[State]
    only_when_asked: bool = False


@dataclass(frozen=True, slots=True)
class NoticeFacts:
    """Everything Lapse needs to know about one notice kind besides its templates.

    - `numbered`: sent more than once in a stage, each carrying its number
      ("reminder 2"); a preview renders it with the number asked for.
    - `deadline`: the lifecycle record's deadline the notice names; it is never
      rendered without one, since it would promise a date nobody knows.
    - `asks_for_money`: a dunning notice; `lapse report` measures the days to pay
      after it.
    - `offers_download`: offers the client a link to the newest verified backup.
    - `starts_notice_period`: its acceptance by the mail server starts the notice
      period before suspension (invariant 3); a refused one holds the account where
      it is, and one accepted late moves the suspension.
    - `after`: the act it states, which must have succeeded first; None for a
      notice the policy sends on its own.
    """

    numbered: bool = False
    deadline: Deadline | None = None
    asks_for_money: bool = False
    offers_download: bool = False
    starts_notice_period: bool = False
    after: AfterAct | None = None


class NoticeKind(StrEnum):
    """The client notices the lifecycle sends, in the order it sends them.

    Each member is `value, NoticeFacts(...)`; read its facts as `kind.facts`.
    """

    _value_: str
    facts: NoticeFacts

    # `facts` has a default only so that `NoticeKind("final")`, the lookup of a member by
    # its value, type-checks: the lookup never reaches this method, only a definition does.
    def __new__(cls, value: str, facts: NoticeFacts | None = None) -> NoticeKind:
        if facts is None:
            raise TypeError(f"notice kind {value!r} is defined without its NoticeFacts")
        member = str.__new__(cls, value)
        member._value_ = value
        member.facts = facts
        return member

    # Sent by the policy: the reminders before the final notice, numbered.
    REMINDER = "reminder", NoticeFacts(numbered=True, asks_for_money=True)
    # Sent by the policy: itemised totals, payment options, the suspension instant.
    FINAL = (
        "final",
        NoticeFacts(deadline="suspend_at", asks_for_money=True, starts_notice_period=True),
    )
    # Sent once the suspend phase succeeded: what was done, the removal date, a backup.
    SUSPENSION = (
        "suspension",
        NoticeFacts(
            deadline="delete_at",
            asks_for_money=True,
            offers_download=True,
            after=AfterAct(Phase.SUSPEND, SUSPENDED_STATES),
        ),
    )
    # Sent by the policy before the removal deadline, numbered.
    REMOVAL_WARNING = (
        "removal-warning",
        NoticeFacts(numbered=True, deadline="delete_at", asks_for_money=True, offers_download=True),
    )
    # Sent once the delete phase succeeded.
    DELETION = "deletion", NoticeFacts(after=AfterAct(Phase.DELETE, frozenset({State.DELETED})))
    # Asked for by a payment with the unsuspend phase; sent once that phase succeeded.
    REACTIVATION = (
        "reactivation",
        NoticeFacts(
            # Online again: suspended neither by the lifecycle nor by an operator.
            after=AfterAct(
                Phase.UNSUSPEND,
                frozenset(State) - SUSPENDED_STATES - {State.OPS_SUSPENDED},
                only_when_asked=True,
            )
        ),
    )
    # Sent by the policy when instalments are agreed in billing.
    PAYMENT_PLAN = "payment-plan", NoticeFacts()

    @property
    def text_template(self) -> str:
        """The plain-text template's name, whose `subject` block is the Subject header."""
        return f"{self.value}.txt"

    @property
    def html_template(self) -> str:
        """The HTML template's name."""
        return f"{self.value}.html"

    @classmethod
    def named(cls, value: str) -> NoticeKind | None:
        """Return the kind whose value is `value` (as the correspondence log stores it), or
        None for a value no kind has (a row written by a release that had one more)."""
        try:
            return cls(value)
        except ValueError:
            return None
