"""The read model of an account's history: its transitions, its notices and the playbook
steps run on its hosts, as recorded, for `lapse history` to lay out as one timeline."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from daemon.domain.errors import UnknownAccountError
from daemon.domain.states import NoticeStatus, StepStatus
from daemon.store.models import Account, Correspondence, Event, PlaybookRun, StepRecord


@dataclass(frozen=True)
class EventView:
    """A recorded transition or decision."""

    id: int
    at: datetime
    from_state: str
    to_state: str
    reason: str
    actor: str
    details: dict[str, Any]


@dataclass(frozen=True)
class LetterView:
    """A client notice as the correspondence log keeps it (without its bytes)."""

    id: int
    notice: str
    number: int
    recipient: str
    subject: str
    message_id: str
    status: NoticeStatus
    transport: str
    created_at: datetime
    sent_at: datetime | None
    receipt: str | None


@dataclass(frozen=True)
class RunView:
    """The playbook run a step belongs to."""

    playbook: str
    phase: str
    host: str


@dataclass(frozen=True)
class StepView:
    """One step of a playbook run that started."""

    id: int
    position: int
    name: str
    status: StepStatus
    started_at: datetime
    changed: bool
    error: str | None
    output: dict[str, Any] | None = None


@dataclass(frozen=True)
class History:
    """Everything recorded about one account, each kind in the order the database lists it."""

    events: list[EventView]
    letters: list[LetterView]
    steps: list[tuple[RunView, StepView]]


class AccountHistory:
    """Reads the recorded history of the accounts of one state database."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def of(self, account_id: str) -> History:
        """Return the account's transitions, notices and started steps.

        Raises UnknownAccountError for an account the state database does not know.
        """
        with self.sessions() as session:
            if session.get(Account, account_id) is None:
                raise UnknownAccountError(f"no account {account_id!r} in the state database")
            return History(
                _events(session, account_id),
                _letters(session, account_id),
                _steps(session, account_id),
            )


def _events(session: Session, account_id: str) -> list[EventView]:
    rows = session.scalars(select(Event).where(Event.account_id == account_id))
    return [
        EventView(e.id, e.at, e.from_state, e.to_state, e.reason, e.actor, e.details) for e in rows
    ]


def _letters(session: Session, account_id: str) -> list[LetterView]:
    rows = session.scalars(select(Correspondence).where(Correspondence.account_id == account_id))
    return [
        LetterView(
            c.id,
            c.notice,
            c.number,
            c.recipient,
            c.subject,
            c.message_id,
            c.status,
            c.transport,
            c.created_at,
            c.sent_at,
            c.receipt,
        )
        for c in rows
    ]


def _steps(session: Session, account_id: str) -> list[tuple[RunView, StepView]]:
    rows = session.execute(
        select(PlaybookRun, StepRecord)
        .join(StepRecord, StepRecord.run_id == PlaybookRun.id)
        .where(PlaybookRun.account_id == account_id, StepRecord.started_at.is_not(None))
    ).all()
    return [
        (
            RunView(run.playbook, run.phase, run.host),
            StepView(
                step.id,
                step.position,
                step.name,
                step.status,
                _started(step),
                step.changed,
                step.error,
                step.output,
            ),
        )
        for run, step in rows
    ]


def _started(step: StepRecord) -> datetime:
    """The start of a step the query chose for having one."""
    assert step.started_at is not None
    return step.started_at
