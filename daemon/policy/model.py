"""Values the policy engine reads and returns: states, the lifecycle record, decisions."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from daemon.domain.notice_kinds import NoticeKind
from daemon.domain.phases import Phase
from daemon.domain.states import State


@dataclass(frozen=True, slots=True)
class LifecycleRecord:
    """What Lapse remembers about one account between evaluations.

    Deadlines (`clock_start`, `suspend_at`, `delete_at`) are absolute UTC
    times; a pause in a side state shifts them forward by its length.
    `number` fields count notices already sent in the current stage.
    """

    account_id: str
    state: State = State.ACTIVE
    resume_state: State | None = None
    reminders_sent: int = 0
    warnings_sent: int = 0
    clock_start: datetime | None = None
    final_notice_at: datetime | None = None
    suspend_at: datetime | None = None
    suspended_at: datetime | None = None
    delete_at: datetime | None = None
    last_contact_at: datetime | None = None
    last_warning_at: datetime | None = None
    paused_since: datetime | None = None
    hold_reason: str | None = None
    hold_until: datetime | None = None

    @property
    def label(self) -> str:
        """The state as shown to people, e.g. 'reminded(2)'."""
        if self.state is State.REMINDED:
            return f"reminded({self.reminders_sent})"
        if self.state is State.REMOVAL_WARNED:
            return f"removal-warned({self.warnings_sent})"
        return self.state.value

    def evolve(self, **changes: object) -> LifecycleRecord:
        """Return a copy with `changes` applied."""
        return replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Action:
    """Something the lifecycle must do as part of a transition.

    `kind` is "notice" (with `notice` and `number`) or "playbook" (with `phase`).
    """

    kind: str
    notice: NoticeKind | None = None
    number: int = 0
    phase: Phase | None = None

    @staticmethod
    def send(notice: NoticeKind, number: int = 0) -> Action:
        """An action that sends a client notice."""
        return Action(kind="notice", notice=notice, number=number)

    @staticmethod
    def run(phase: Phase) -> Action:
        """An action that runs a playbook phase on the account's hosts."""
        return Action(kind="playbook", phase=phase)

    def __str__(self) -> str:
        if self.kind == "notice":
            return f"notice:{self.notice}" + (f"#{self.number}" if self.number else "")
        return f"playbook:{self.phase}"


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one evaluation.

    `record` is the record after the decision (unchanged when nothing happens);
    `reason` says why, in words an operator reads in the log; `wake_at` is the
    next moment the account needs looking at, or None when only a billing
    change can move it.
    """

    record: LifecycleRecord
    from_state: State
    reason: str
    actions: tuple[Action, ...] = ()
    wake_at: datetime | None = None
    changed: bool = False

    @property
    def to_state(self) -> State:
        """The state after the decision."""
        return self.record.state
