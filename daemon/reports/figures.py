"""The figures of `lapse report`, computed from the state database over a window.

Definitions (also in docs/reports.md):

- accounts per stage: every state, with zero for the states no account is in;
- overdue now: the positive balances of accounts whose lifecycle stage is past
  active and before deletion, per currency; for a side state (hold, payment
  plan, exemption, ops suspension) the stage is the one it will resume;
- recovered: what the payments in the window settled, per currency (each
  payment's event records the balance owed just before it);
- recovery rate: of the accounts that fell from active into dunning in the
  window, the share with a payment since;
- days to pay after a notice type: for each payment in the window, the time
  since the last notice of that type sent in the same dunning episode; the
  median per type;
- suspensions, reactivations, deletions: decisions in the window that ran the
  suspend phase, brought an account back to active out of a suspension or a
  deletion, and ran the delete phase.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from daemon.domain.states import SIDE_STATES, State
from daemon.notices.money import minor_unit
from daemon.reports import payments as paying
from daemon.store.models import Account, Event

# Stages in which a balance is not overdue: not yet due, or written off by deletion.
_NOT_OVERDUE = frozenset({State.ACTIVE.value, State.DELETED.value})
_SIDE = frozenset(s.value for s in SIDE_STATES)
_TAKEN_DOWN = frozenset(
    s.value
    for s in (
        State.SUSPENDED,
        State.REMOVAL_WARNED,
        State.SUSPEND_FAILED,
        State.OPS_SUSPENDED,
        State.DELETED,
        State.DELETE_FAILED,
    )
)


@dataclass(frozen=True)
class Report:
    """What `lapse report` shows. Money is Decimal per currency code; days are
    medians per notice type (None when no payment followed that type)."""

    since: datetime
    until: datetime
    accounts_per_state: Mapping[str, int]
    overdue_now: Mapping[str, Decimal]
    recovered: Mapping[str, Decimal]
    payments: int
    became_overdue: int
    paid_since: int
    days_to_pay: Mapping[str, float | None]
    payments_after: Mapping[str, int]
    suspensions: int
    reactivations: int
    deletions: int

    @property
    def recovery_rate(self) -> float | None:
        """The share of accounts that fell overdue in the window and paid since, to
        four decimals; None when none fell overdue."""
        return round(self.paid_since / self.became_overdue, 4) if self.became_overdue else None

    def as_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready data: times in ISO 8601, money as strings."""
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "accounts_per_state": dict(self.accounts_per_state),
            "overdue_now": {c: str(v) for c, v in sorted(self.overdue_now.items())},
            "recovered": {c: str(v) for c, v in sorted(self.recovered.items())},
            "payments": self.payments,
            "became_overdue": self.became_overdue,
            "paid_since": self.paid_since,
            "recovery_rate": self.recovery_rate,
            "median_days_to_pay_after": dict(self.days_to_pay),
            "payments_after": dict(self.payments_after),
            "suspensions": self.suspensions,
            "reactivations": self.reactivations,
            "deletions": self.deletions,
        }


@dataclass(frozen=True)
class MonthlyMoney:
    """Money per currency and per calendar month (UTC) of a window: what the report's
    chart draws as a trend. `months` are "YYYY-MM", oldest first; each currency's list
    has one amount per month."""

    months: tuple[str, ...]
    recovered: Mapping[str, list[Decimal]]


class Reports:
    """Computes reports over one state database, for whoever asks (`lapse report`)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def between(self, since: datetime, until: datetime) -> Report:
        """Return the report over [since, until] (aware datetimes); see build_report."""
        with self.sessions() as session:
            return build_report(session, since, until)

    def monthly(self, since: datetime, until: datetime) -> MonthlyMoney:
        """Return what payments recovered in each month touching [since, until], per
        currency (the payments themselves counted only within the window)."""
        months = months_between(since, until)
        with self.sessions() as session:
            in_window = [p for p in paying.payment_events(session, until) if p.at >= since]
        return MonthlyMoney(months, paying.recovered_by_month(in_window, months))


def months_between(since: datetime, until: datetime) -> tuple[str, ...]:
    """Return every calendar month from `since`'s to `until`'s, as "YYYY-MM"."""
    year, month = since.year, since.month
    months = []
    while (year, month) <= (until.year, until.month):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return tuple(months)


def build_report(session: Session, since: datetime, until: datetime) -> Report:
    """Compute the report: accounts as they stand now, events within [since, until].

    Takes a session on the state database and two aware datetimes. Reads only.
    """
    all_payments = paying.payment_events(session, until)
    in_window = [p for p in all_payments if p.at >= since]
    entries = paying.overdue_entries(session, since, until)
    waits = paying.days_to_pay(session, all_payments, since)
    events = _events(session, since, until)
    return Report(
        since=since,
        until=until,
        accounts_per_state=accounts_per_state(session),
        overdue_now=overdue_now(session),
        recovered=paying.recovered(in_window),
        payments=len(in_window),
        became_overdue=len(entries),
        paid_since=len(paying.paid_after(entries, in_window)),
        days_to_pay={kind.value: paying.median_days(days) for kind, days in waits.items()},
        payments_after={kind.value: len(days) for kind, days in waits.items()},
        suspensions=sum(_ran(e, "suspend") for e in events),
        reactivations=sum(_is_reactivation(e) for e in events),
        deletions=sum(_ran(e, "delete") for e in events),
    )


def accounts_per_state(session: Session) -> dict[str, int]:
    """Return how many accounts are in each state now, every state listed, in
    lifecycle order."""
    counts = dict(
        session.execute(select(Account.state, func.count()).group_by(Account.state)).all()
    )
    return {state.value: counts.get(state.value, 0) for state in State}


def overdue_now(session: Session) -> dict[str, Decimal]:
    """Return the overdue balances per currency, in each currency's minor unit.

    Summed here rather than in SQL: SQLite adds NUMERIC columns as floating point.
    """
    rows = session.execute(
        select(Account.state, Account.resume_state, Account.currency, Account.balance).where(
            Account.balance > 0
        )
    )
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for state, resume_state, currency, balance in rows:
        stage = resume_state if state in _SIDE and resume_state else state
        if stage not in _NOT_OVERDUE:
            totals[currency] += balance
    return {currency: total.quantize(minor_unit(currency)) for currency, total in totals.items()}


def _events(session: Session, since: datetime, until: datetime) -> list[Event]:
    """Return the events within [since, until], oldest first."""
    query = select(Event).where(Event.at >= since, Event.at <= until).order_by(Event.at, Event.id)
    return list(session.scalars(query))


def _ran(event: Event, phase: str) -> bool:
    """Return whether the event's decision queued the playbook `phase`."""
    actions: Iterable[str] = (event.details or {}).get("actions", [])
    return f"playbook:{phase}" in actions


def _is_reactivation(event: Event) -> bool:
    """A return to active out of a suspension or deletion (by payment or by ops), or
    a payment that brought the site back while a legal hold stays."""
    if event.to_state == State.ACTIVE.value:
        return event.from_state in _TAKEN_DOWN or _ran(event, "unsuspend")
    return event.reason.startswith(paying.PAID_REASON) and _ran(event, "unsuspend")
