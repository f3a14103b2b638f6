"""Recorded payment events: written before the listener answers, pending until acted on.

A payment webhook is a promise that billing now shows the account paid. The event
is kept in the state database (`webhook_events`) with `handled_at` empty until the
account was evaluated with a fresh billing read made after the event arrived. Two
readers look for pending events (invariant 2):

- a running suspend or delete phase, before every step and inside long steps, so
  it stops and the payment's reactivation undoes what it did;
- the scheduler, after every job and at start, so an event that arrived while the
  account's own job ran, or before a crash, is acted on all the same.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from daemon.store.models import WebhookEvent


def record_payment(
    session: Session, key: str, account_id: str, source: str, now: datetime, *, known: bool
) -> None:
    """Add the payment event `key` to the caller's transaction.

    An event for an account the state database does not know is recorded as handled
    at once: nothing runs for it, and the sync that first sees the account reads its
    billing afresh anyway.
    """
    session.add(
        WebhookEvent(
            key=key,
            received_at=now,
            account_id=account_id,
            source=source,
            handled_at=None if known else now,
        )
    )


def pending_keys(sessions: sessionmaker[Session], account_id: str) -> list[str]:
    """Return the keys of the account's payment events not yet acted on, oldest first."""
    with sessions() as session:
        return list(
            session.scalars(
                select(WebhookEvent.key)
                .where(WebhookEvent.account_id == account_id, WebhookEvent.handled_at.is_(None))
                .order_by(WebhookEvent.received_at, WebhookEvent.key)
            )
        )


def pending_by_account(sessions: sessionmaker[Session]) -> dict[str, list[str]]:
    """Return the keys of every pending payment event, by account, oldest account first."""
    with sessions() as session:
        rows = session.execute(
            select(WebhookEvent.account_id, WebhookEvent.key)
            .where(WebhookEvent.handled_at.is_(None), WebhookEvent.account_id.is_not(None))
            .order_by(WebhookEvent.received_at, WebhookEvent.key)
        ).all()
    pending: dict[str, list[str]] = {}
    for account_id, key in rows:
        if account_id is not None:  # the query excludes them; this tells mypy
            pending.setdefault(account_id, []).append(key)
    return pending


def mark_handled(sessions: sessionmaker[Session], keys: Iterable[str], now: datetime) -> int:
    """Mark the events `keys` acted on (those still pending); return how many changed.

    Only keys read before the billing read that acted on them are passed here, so an
    event that arrives during that read stays pending for the next look.
    """
    wanted = list(keys)
    if not wanted:
        return 0
    with sessions.begin() as session:
        result = session.execute(
            update(WebhookEvent)
            .where(WebhookEvent.key.in_(wanted), WebhookEvent.handled_at.is_(None))
            .values(handled_at=now)
        )
    return int(result.rowcount)  # type: ignore[attr-defined]
