"""Sample billing data: a handful of accounts at every stage of the default policy.

Due dates are relative to the moment the file is written, so that a first sync
with the default policy (reminders 3, 10 and 17 days after the due date, a final
notice on day 28) finds one account to remind, one to remind again, one that gets
its final notice, and the side cases an operator should see: paid up, not yet
due, exempt, on a payment plan, and owing less than the minimum balance.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

# (account, currency, time zone, days overdue or None when paid, line items)
_ACCOUNTS: tuple[tuple[str, str, str, int | None, tuple[tuple[str, str], ...]], ...] = (
    ("acme", "EUR", "Europe/Berlin", None, ()),
    (
        "bluebird",
        "USD",
        "America/New_York",
        -5,
        (("Shared hosting — Business plan, monthly", "29.00"),),
    ),
    (
        "cobalt",
        "EUR",
        "Europe/Paris",
        4,
        (("Shared hosting — Starter plan, monthly", "9.90"), ("Domain cobalt.example", "14.00")),
    ),
    (
        "delta",
        "USD",
        "America/Chicago",
        12,
        (("VPS S, monthly", "20.00"), ("Extra IPv4 address", "3.00")),
    ),
    (
        "echo",
        "JPY",
        "Asia/Tokyo",
        30,
        (
            ("Shared hosting — Business plan, quarterly", "8400"),
            ("Backup add-on, quarterly", "1200"),
            ("Domain echo.example", "1800"),
        ),
    ),
    ("foxtrot", "EUR", "Europe/Madrid", 40, (("Non-profit hosting, yearly", "60.00"),)),
    ("golf", "USD", "America/Los_Angeles", 20, (("Reseller plan, monthly", "90.00"),)),
    ("hotel", "EUR", "Europe/Vienna", 15, (("Currency rounding difference", "0.50"),)),
)

_NAMES = {
    "acme": "Acme Widgets Ltd",
    "bluebird": "Bluebird Bakery",
    "cobalt": "Cobalt Studio",
    "delta": "Delta Tours",
    "echo": "Echo Sound 株式会社",
    "foxtrot": "Foxtrot Animal Rescue",
    "golf": "Golf Club Riverside",
    "hotel": "Hotel Alpenblick",
}


def sample_document(now: datetime, sites_dir: Path) -> dict[str, Any]:
    """Return the sample billing document (nested format) with due dates relative to `now`.

    Each account has one service on host "localhost" whose docroot is
    `sites_dir/<account>`.
    """
    accounts = []
    for account_id, currency, zone, overdue, items in _ACCOUNTS:
        invoices = []
        if overdue is not None:
            due_at = now - timedelta(days=overdue)
            total = str(sum(Decimal(amount) for _label, amount in items))
            invoices.append(
                {
                    "id": f"INV-{account_id.upper()}-1",
                    "issued_at": (due_at - timedelta(days=14)).isoformat(),
                    "due_at": due_at.isoformat(),
                    "total": total,
                    "items": [{"description": text, "amount": amount} for text, amount in items],
                }
            )
        accounts.append(
            {
                "account_id": account_id,
                "plan": "default",
                "contact": {
                    "name": _NAMES[account_id],
                    "email": f"billing@{account_id}.example",
                    "timezone": zone,
                },
                "currency": currency,
                "created_at": (now - timedelta(days=400)).isoformat(),
                "exempt": account_id == "foxtrot",
                "invoices": invoices,
                "instalments": _instalments(account_id, now),
                "services": [
                    {
                        "host": "localhost",
                        "system_user": account_id,
                        "docroot": str(sites_dir / account_id),
                        "domains": [f"{account_id}.example.test"],
                        "databases": [],
                    }
                ],
            }
        )
    return {"accounts": accounts}


def write_sample_billing(path: Path, now: datetime) -> None:
    """Write the sample billing document to `path` (sites under `path.parent/sites`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = sample_document(now, path.parent / "sites")
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def ensure_sample_billing(path: Path, now: datetime) -> bool:
    """Write the sample billing document unless `path` exists; returns whether it wrote."""
    if path.exists():
        return False
    write_sample_billing(path, now)
    return True


def _instalments(account_id: str, now: datetime) -> list[dict[str, Any]]:
    """The payment plan golf agreed: three instalments, the first paid, the next in a week."""
    if account_id != "golf":
        return []
    return [
        {"due_at": (now - timedelta(days=7)).isoformat(), "amount": "30.00", "paid": True},
        {"due_at": (now + timedelta(days=7)).isoformat(), "amount": "30.00", "paid": False},
        {"due_at": (now + timedelta(days=37)).isoformat(), "amount": "30.00", "paid": False},
    ]
