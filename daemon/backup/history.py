"""The account's history as one JSON document: what billing said, what Lapse did and sent."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from daemon.store.models import Account, Correspondence, Event


def export_history(session: Session, account: Account, at: datetime) -> bytes:
    """Return the history of `account` as UTF-8 JSON.

    It holds the last billing snapshot, the lifecycle record, every event and every
    notice (with the exact message sent, base64-encoded), so a backup alone can show
    what the client was told and when.
    """
    events = session.scalars(
        select(Event).where(Event.account_id == account.id).order_by(Event.id)
    ).all()
    letters = session.scalars(
        select(Correspondence)
        .where(Correspondence.account_id == account.id)
        .order_by(Correspondence.id)
    ).all()
    document: dict[str, Any] = {
        "exported_at": at.isoformat(),
        "account": {
            "id": account.id,
            "plan": account.plan,
            "state": account.state,
            "balance": str(account.balance),
            "currency": account.currency,
            "first_seen_at": account.first_seen_at.isoformat(),
            "final_notice_at": _iso(account.final_notice_at),
            "suspend_at": _iso(account.suspend_at),
            "suspended_at": _iso(account.suspended_at),
            "delete_at": _iso(account.delete_at),
        },
        "billing_snapshot": account.snapshot,
        "events": [
            {
                "id": event.id,
                "at": event.at.isoformat(),
                "from": event.from_state,
                "to": event.to_state,
                "reason": event.reason,
                "actor": event.actor,
                "details": event.details,
            }
            for event in events
        ],
        "correspondence": [
            {
                "id": letter.id,
                "notice": letter.notice,
                "number": letter.number,
                "recipient": letter.recipient,
                "subject": letter.subject,
                "message_id": letter.message_id,
                "status": letter.status,
                "transport": letter.transport,
                "created_at": letter.created_at.isoformat(),
                "sent_at": _iso(letter.sent_at),
                "receipt": letter.receipt,
                "message_base64": base64.b64encode(letter.raw).decode("ascii"),
            }
            for letter in letters
        ],
    }
    return json.dumps(document, indent=2, ensure_ascii=False, default=str).encode("utf-8")


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
