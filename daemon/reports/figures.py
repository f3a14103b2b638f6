"""The figures of `lapse report`, computed from the state database over a window.

Definitions (also in docs/reports.md):

- overdue now: the balances of accounts that owe and are in dunning, suspended,
  failed or held, per currency;
- recovered: what payments in the window settled, per currency (each payment's
  event records the balance owed just before it);
- recovery rate: of the accounts that turned overdue in the window, the share
  that has paid since;
- days to pay after a notice: for each payment in the window, the time from the
  last notice the client was sent before paying; the median per notice type;
- suspensions, reactivations, deletions: transitions in the window.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from daemon.policy.model import SUSPENDED_STATES, State
from daemon.store.models import Account, Correspondence, Event

# States in which an unpaid balance counts as overdue.
_OWING = frozenset(
    {
        State.OVERDUE,
        State.REMINDED,
        State.FINAL_NOTICE,
        *SUSPENDED_STATES,
        State.SUSPEND_FAILED,
        State.DELETE_FAILED,
        State.ON_HOLD,
        State.PAYMENT_PLAN,
        State.LEGAL_HOLD,
        State.OPS_SUSPENDED,
    }
)
_SUSPENDED = frozenset({s.value for s in SUSPENDED_STATES} | {"suspend-failed", "ops-suspended"})
_DAY = 86400.0


@dataclass(frozen=True)
class Report:
    """What `lapse report` shows; money as Decimal, per currency."""

    since: datetime
    until: datetime
    accounts_per_state: dict[str, int]
    overdue_now: dict[str, Decimal]
    recovered: dict[str, Decimal]
    payments: int
    became_overdue: int
    paid_since: int
    days_to_pay: dict[str, float] = field(default_factory=dict)  # median per notice type
    payments_after: dict[str, int] = field(default_factory=dict)  # payments per notice type
    suspensions: int = 0
    reactivations: int = 0
    deletions: int = 0

    @property
    def recovery_rate(self) -> float | None:
        """Share of the accounts that turned overdue in the window and paid since."""
        return self.paid_since / self.became_overdue if self.became_overdue else None

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (money and times as strings)."""
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "accounts_per_state": self.accounts_per_state,
            "overdue_now": {k: str(v) for k, v in self.overdue_now.items()},
            "recovered": {k: str(v) for k, v in self.recovered.items()},
            "payments": self.payments,
            "became_overdue": self.became_overdue,
            "paid_since": self.paid_since,
            "recovery_rate": self.recovery_rate,
            "median_days_to_pay_after": self.days_to_pay,
            "payments_after": self.payments_after,
            "suspensions": self.suspensions,
            "reactivations": self.reactivations,
            "deletions": self.deletions,
        }


def build_report(session: Session, since: datetime, until: datetime) -> Report:
    """Compute the report for events in [since, until] and accounts as they stand."""
    per_state = dict(
        session.execute(select(Account.state, func.count()).group_by(Account.state)).all()
    )
    overdue: dict[str, Decimal] = defaultdict(Decimal)
    for currency, total in session.execute(
        select(Account.currency, func.sum(Account.balance))
        .where(Account.state.in_([s.value for s in _OWING]), Account.balance > 0)
        .group_by(Account.currency)
    ):
        overdue[currency] += Decimal(total)
    events = session.scalars(
        select(Event).where(Event.at >= since, Event.at <= until).order_by(Event.at, Event.id)
    ).all()
    payments = [e for e in events if "recovered" in (e.details or {})]
    recovered: dict[str, Decimal] = defaultdict(Decimal)
    for payment in payments:
        recovered[payment.details["currency"]] += Decimal(payment.details["recovered"])
    overdue_accounts = {e.account_id for e in events if e.to_state == State.OVERDUE.value}
    payers = {p.account_id for p in payments}
    waits, counts = _days_to_pay(session, payments)
    return Report(
        since=since,
        until=until,
        accounts_per_state=per_state,
        overdue_now=dict(overdue),
        recovered=dict(recovered),
        payments=len(payments),
        became_overdue=len(overdue_accounts),
        paid_since=len(overdue_accounts & payers),
        days_to_pay=waits,
        payments_after=counts,
        suspensions=sum(
            e.to_state in _SUSPENDED and e.from_state not in _SUSPENDED for e in events
        ),
        reactivations=sum(
            e.to_state == State.ACTIVE.value and e.from_state in _SUSPENDED for e in events
        ),
        deletions=sum(e.to_state == State.DELETED.value for e in events),
    )


def _days_to_pay(
    session: Session, payments: list[Event]
) -> tuple[dict[str, float], dict[str, int]]:
    """Median days from the last notice sent before each payment, per notice type;
    and how many payments followed each type."""
    waits: dict[str, list[float]] = defaultdict(list)
    for payment in payments:
        last = session.execute(
            select(Correspondence.notice, Correspondence.sent_at)
            .where(
                Correspondence.account_id == payment.account_id,
                Correspondence.sent_at.is_not(None),
                Correspondence.sent_at <= payment.at,
                Correspondence.notice != "reactivation",
            )
            .order_by(Correspondence.sent_at.desc(), Correspondence.id.desc())
            .limit(1)
        ).first()
        if last is None:
            continue  # paid before any notice
        notice, sent_at = last
        assert sent_at is not None  # the query asks for sent notices only
        waits[notice].append((payment.at - sent_at).total_seconds() / _DAY)
    medians = {kind: round(statistics.median(days), 2) for kind, days in waits.items()}
    return medians, dict(Counter({kind: len(days) for kind, days in waits.items()}))
