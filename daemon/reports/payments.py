"""Payments as the state database records them, and what the report derives from them.

A payment is a lifecycle event whose reason starts with "paid in full": the
policy writes that reason whenever a balance falls below the minimum before
deletion, and the engine adds to the event the balance it settled
(`details.recovered` and `details.currency`).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from daemon.domain.notice_kinds import NoticeKind
from daemon.domain.states import DUNNING_STATES, State
from daemon.notices.money import minor_unit
from daemon.store.models import Correspondence, Event

PAID_REASON = "paid in full"
# The notices that ask for money, in the order the lifecycle sends them.
DUNNING_NOTICES = tuple(kind for kind in NoticeKind if kind.facts.asks_for_money)
_ENTERING = frozenset(s.value for s in DUNNING_STATES)
_DAY_SECONDS = 86400


def payment_events(session: Session, until: datetime) -> list[Event]:
    """Return every payment event up to `until`, oldest first.

    Earlier payments are needed too: each one ends a dunning episode, which bounds
    the notices counted for the next payment of the same account.
    """
    query = (
        select(Event)
        .where(Event.reason.startswith(PAID_REASON), Event.at <= until)
        .order_by(Event.at, Event.id)
    )
    return list(session.scalars(query))


def recovered(payments: Iterable[Event]) -> dict[str, Decimal]:
    """Sum what `payments` settled, per currency, in each currency's minor unit.

    Payments recorded before the engine noted the settled balance add nothing.
    """
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for payment in payments:
        details = payment.details or {}
        if "recovered" in details:
            totals[details["currency"]] += Decimal(details["recovered"])
    return {currency: total.quantize(minor_unit(currency)) for currency, total in totals.items()}


def recovered_by_month(
    payments: Iterable[Event], months: Sequence[str]
) -> dict[str, list[Decimal]]:
    """Sum what `payments` settled per currency and per month ("2026-03"), one total per
    entry of `months` (zero for a month without payments), in each currency's minor unit.
    Payments in a month not listed are left out."""
    index = {month: position for position, month in enumerate(months)}
    totals: dict[str, list[Decimal]] = {}
    for payment in payments:
        details = payment.details or {}
        position = index.get(f"{payment.at:%Y-%m}")
        if "recovered" not in details or position is None:
            continue
        row = totals.setdefault(details["currency"], [Decimal(0)] * len(months))
        row[position] += Decimal(details["recovered"])
    return {
        currency: [total.quantize(minor_unit(currency)) for total in row]
        for currency, row in totals.items()
    }


def overdue_entries(session: Session, since: datetime, until: datetime) -> dict[str, datetime]:
    """Return, per account that fell from active into dunning within [since, until],
    the first time it did."""
    query = (
        select(Event.account_id, func.min(Event.at))
        .where(
            Event.at >= since,
            Event.at <= until,
            Event.from_state == State.ACTIVE.value,
            Event.to_state.in_(_ENTERING),
        )
        .group_by(Event.account_id)
    )
    return {account_id: at for account_id, at in session.execute(query)}


def paid_after(entries: dict[str, datetime], payments: Iterable[Event]) -> set[str]:
    """Return the accounts of `entries` with a payment at or after their entry."""
    return {
        p.account_id for p in payments if p.account_id in entries and p.at >= entries[p.account_id]
    }


def days_to_pay(
    session: Session, payments: Sequence[Event], since: datetime
) -> dict[NoticeKind, list[timedelta]]:
    """For each payment at or after `since`, the time from the last notice of each
    dunning type sent in the same episode (after the account's previous payment).

    Takes all payments up to the window's end (oldest first). Returns the waits
    per notice type; a type the client was not sent before paying adds nothing.
    """
    waits: dict[NoticeKind, list[timedelta]] = {kind: [] for kind in DUNNING_NOTICES}
    previous: dict[str, datetime] = {}
    for payment in payments:
        start = previous.get(payment.account_id)
        previous[payment.account_id] = payment.at
        if payment.at < since:
            continue
        for kind, sent_at in _last_notices(session, payment, start).items():
            waits[kind].append(payment.at - sent_at)
    return waits


def _last_notices(
    session: Session, payment: Event, start: datetime | None
) -> dict[NoticeKind, datetime]:
    """Return when each dunning notice type was last sent to the payment's account,
    after `start` (if any) and up to the payment."""
    query = (
        select(Correspondence.notice, func.max(Correspondence.sent_at))
        .where(
            Correspondence.account_id == payment.account_id,
            Correspondence.notice.in_([kind.value for kind in DUNNING_NOTICES]),
            Correspondence.sent_at.is_not(None),
            Correspondence.sent_at <= payment.at,
        )
        .group_by(Correspondence.notice)
    )
    if start is not None:
        query = query.where(Correspondence.sent_at > start)
    rows = session.execute(query)
    return {NoticeKind(notice): sent_at for notice, sent_at in rows if sent_at is not None}


def median_days(waits: Sequence[timedelta]) -> float | None:
    """Return the median of `waits` in days, to two decimals; None for no waits."""
    if not waits:
        return None
    return round(statistics.median(wait.total_seconds() for wait in waits) / _DAY_SECONDS, 2)
