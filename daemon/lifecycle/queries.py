"""Read models of the accounts: where each stands, what waits for it, what it last looked like.

The views the command line prints (`lapse status`, `accounts`, `plan`, `notices
preview`, `playbook show`) ask these questions here, of the same state database the
lifecycle engine writes, and get plain values back: no session or row leaves this
module. Nothing here writes.
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from daemon.domain.errors import UnknownAccountError
from daemon.domain.snapshot import AccountSnapshot
from daemon.domain.states import ActionStatus
from daemon.policy.model import LifecycleRecord
from daemon.store.models import Account, ScheduledAction
from daemon.store.records import record_from_row, stored_snapshot


@dataclass(frozen=True)
class AccountView:
    """One account as it stands: its lifecycle record and what billing last said it owes."""

    id: str
    plan: str
    record: LifecycleRecord
    balance: Decimal
    currency: str
    next_wake_at: datetime | None


@dataclass(frozen=True)
class StoredAccount:
    """An account's lifecycle record and the billing snapshot stored with it (None before
    its first sync)."""

    record: LifecycleRecord
    snapshot: AccountSnapshot | None


@dataclass(frozen=True)
class Census:
    """How many accounts there are, by state (in the order the database lists the
    accounts), and how many playbook actions wait to run."""

    accounts: int
    by_state: Counter[str]
    pending_actions: int


@dataclass(frozen=True)
class PendingAction:
    """A playbook action queued for an account and not run yet."""

    kind: str
    name: str
    created_at: datetime


class AccountQueries:
    """Answers questions about the accounts of one state database."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def view(self, account_id: str) -> AccountView:
        """Return the account as it stands. Raises UnknownAccountError."""
        with self.sessions() as session:
            return _view(_row(session, account_id))

    def views(self, state: str | None = None) -> list[AccountView]:
        """Return every account (only those whose stored state is `state`, when given),
        ordered by id."""
        query = select(Account).order_by(Account.id)
        if state:
            query = query.where(Account.state == state)
        with self.sessions() as session:
            return [_view(row) for row in session.scalars(query)]

    def census(self) -> Census:
        """Count the accounts per state and the playbook actions pending."""
        with self.sessions() as session:
            rows = session.scalars(select(Account)).all()
            counts = Counter(record_from_row(row).state.value for row in rows)
            pending = session.scalar(
                select(func.count())
                .select_from(ScheduledAction)
                .where(ScheduledAction.status == ActionStatus.PENDING)
            )
        return Census(len(rows), counts, pending or 0)

    def pending_actions(self, account_id: str) -> list[PendingAction]:
        """Return the account's playbook actions waiting to run."""
        with self.sessions() as session:
            actions = session.scalars(
                select(ScheduledAction).where(
                    ScheduledAction.account_id == account_id,
                    ScheduledAction.status == ActionStatus.PENDING,
                )
            ).all()
            return [PendingAction(a.kind, a.name, a.created_at) for a in actions]

    def ids(self, prefix: str = "") -> list[str]:
        """Return the ids of the accounts (those starting with `prefix`, when given), sorted."""
        query = select(Account.id).order_by(Account.id)
        if prefix:
            query = query.where(Account.id.startswith(prefix, autoescape=True))
        with self.sessions() as session:
            return list(session.scalars(query))

    def require(self, account_id: str) -> None:
        """Check that the state database knows the account. Raises UnknownAccountError,
        naming the closest ids it does know."""
        with self.sessions() as session:
            _row(session, account_id)

    def stored(self, account_id: str) -> StoredAccount:
        """Return the account's record and stored snapshot. Raises UnknownAccountError."""
        with self.sessions() as session:
            row = _row(session, account_id)
            return StoredAccount(record_from_row(row), stored_snapshot(row))

    def find(self, account_id: str) -> StoredAccount | None:
        """Return the account's record and stored snapshot, or None when the state
        database does not know it."""
        with self.sessions() as session:
            row = session.get(Account, account_id)
            return StoredAccount(record_from_row(row), stored_snapshot(row)) if row else None

    def synced(self) -> list[tuple[AccountSnapshot, LifecycleRecord]]:
        """Return the snapshot and record of every account synced at least once."""
        with self.sessions() as session:
            return [
                (snapshot, record_from_row(row))
                for row in session.scalars(select(Account))
                if (snapshot := stored_snapshot(row)) is not None
            ]


def _row(session: Session, account_id: str) -> Account:
    """Return the account's row in `session`. Raises UnknownAccountError."""
    row = session.get(Account, account_id)
    if row is None:
        raise UnknownAccountError(
            f"no account {account_id!r} in the state database"
            + did_you_mean(account_id, session.scalars(select(Account.id)).all())
        )
    return row


def did_you_mean(account_id: str, known: Sequence[str]) -> str:
    """Return "; did you mean 'x'?" naming the known ids closest to `account_id` (at
    most three), or "" when none is close."""
    close = difflib.get_close_matches(account_id, known, n=3, cutoff=0.6)
    if not close:
        return ""
    # The closest first; equally close ones in the order ids sort in.
    close.sort(key=lambda name: (-difflib.SequenceMatcher(None, account_id, name).ratio(), name))
    return "; did you mean " + " or ".join(repr(name) for name in close) + "?"


def _view(row: Account) -> AccountView:
    return AccountView(
        row.id, row.plan, record_from_row(row), row.balance, row.currency, row.next_wake_at
    )
