"""Sample billing data: a handful of accounts at every stage of the default policy.

Due dates are relative to the moment the file is written, so that a first sync
with the default policy (reminders 3, 10 and 17 days after the due date, a final
notice on day 28) finds one account to remind, one to remind again, one that gets
its final notice, and the side cases an operator should see: paid up, not yet
due, exempt, on a payment plan, and owing less than the minimum balance.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class _Demo:
    """One demo account: who it is, and how overdue its one open invoice is."""

    account_id: str
    name: str
    contact: str
    timezone: str
    currency: str
    plan: str
    # Days since the invoice's due date (negative: due in the future); None: nothing open.
    overdue_days: int | None = None
    items: tuple[tuple[str, int | str], ...] = ()
    # Part of the invoice already paid, in the currency's units; the rest is due.
    paid: str = "0"
    exempt: bool = False
    database: str | None = None  # "mariadb" or "postgresql"
    language: str | None = None  # None: the brand's


_DEMOS = (
    _Demo("acme", "Acme Widgets Ltd", "Anna Becker", "Europe/Berlin", "EUR", "business",
          database="mariadb", language="de-DE"),
    _Demo("bluebird", "Bluebird Bakery", "Ben Carter", "America/New_York", "USD", "starter",
          overdue_days=-5,
          items=(("Shared hosting — Starter plan, {month}", "12.00"),)),
    _Demo("cobalt", "Cobalt Studio", "Chloé Martin", "Europe/Paris", "EUR", "business",
          overdue_days=4,
          items=(("Shared hosting — Business plan, {month}", "24.90"),
                 ("Domain cobalt.example.test, yearly renewal", "14.00")),
          database="mariadb", language="fr"),
    _Demo("delta", "Delta Tours", "Dana Whitfield", "America/Chicago", "USD", "vps",
          overdue_days=12,
          items=(("VPS S — {month}", "20.00"), ("Extra IPv4 address, {month}", "3.00"),
                 ("Daily backups add-on, {month}", "4.50")),
          database="postgresql"),
    _Demo("echo", "Echo Sound K.K.", "Emi Tanaka", "Asia/Tokyo", "JPY", "business",
          overdue_days=30,
          items=(("Shared hosting — Business plan, {month}", 3300),
                 ("Backup add-on, {month}", 550)),
          database="mariadb"),
    _Demo("foxtrot", "Foxtrot Animal Rescue", "Felix Ortega", "Europe/Madrid", "EUR", "nonprofit",
          overdue_days=40, items=(("Non-profit hosting, yearly", "60.00"),), exempt=True),
    _Demo("golf", "Golf Club Riverside", "Grace Lee", "America/Los_Angeles", "USD", "reseller",
          overdue_days=20, items=(("Reseller plan, {month}", "90.00"),),
          database="postgresql"),
    _Demo("hotel", "Hotel Alpenblick", "Hannes Gruber", "Europe/Vienna", "EUR", "starter",
          overdue_days=15, items=(("Shared hosting — Starter plan, {month}", "9.90"),),
          paid="9.40"),
    # The "express" plan of the embedded defaults gives 10 seconds of notice, so the demo
    # shows a suspension (backup, maintenance page) within its first minute.
    _Demo("india", "Indigo Print Shop", "Ida Novak", "Europe/Prague", "EUR", "express",
          overdue_days=10, items=(("Shared hosting — Starter plan, {month}", "9.90"),)),
)  # fmt: skip


def sample_document(now: datetime, sites_dir: Path) -> dict[str, Any]:
    """Return the sample billing document (nested format) with due dates relative to `now`.

    Takes an aware `now` and the directory the demo sites live in; each account
    has one service on host "localhost" whose docroot is `sites_dir/<account>`.
    Returns the document as JSON-ready dicts (amounts as strings, JPY as integers).
    """
    return {"accounts": [_account(demo, now, sites_dir) for demo in _DEMOS]}


def write_sample_billing(path: Path, now: datetime) -> None:
    """Write the sample billing document to `path`, creating its directory.

    The demo sites' docroots are under `path.parent / "sites"`. Raises OSError
    when the file cannot be written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    document = sample_document(now, path.parent / "sites")
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def ensure_demo_sites(sites_dir: Path) -> int:
    """Create a small home page for every demo account whose site directory is missing.

    Returns how many were created. Raises OSError when the directory cannot be written.
    """
    created = 0
    for demo in _DEMOS:
        site = sites_dir / demo.account_id
        if site.exists() or (sites_dir / f"{demo.account_id}.lapse-suspended").exists():
            continue
        site.mkdir(parents=True)
        (site / "index.html").write_text(
            f"<!DOCTYPE html><title>{demo.name}</title><h1>Welcome to {demo.name}</h1>\n"
        )
        created += 1
    return created


def ensure_sample_billing(path: Path, now: datetime) -> bool:
    """Write the sample billing document unless `path` exists; returns whether it wrote.

    An existing file is never touched: after the first start it is the operator's.
    Raises OSError when the file cannot be written.
    """
    if path.exists():
        return False
    write_sample_billing(path, now)
    return True


def _account(demo: _Demo, now: datetime, sites_dir: Path) -> dict[str, Any]:
    """Return one demo account as a nested-format record."""
    service: dict[str, Any] = {
        "host": "localhost",
        "system_user": demo.account_id,
        "docroot": str(sites_dir / demo.account_id),
        "domains": [f"{demo.account_id}.example.test"],
    }
    if demo.database is not None:
        service["databases"] = [
            {"engine": demo.database, "name": f"{demo.account_id}_site", "user": demo.account_id}
        ]
    contact = {
        "name": f"{demo.contact} ({demo.name})",
        "email": f"{demo.account_id}@example.com",
        "timezone": demo.timezone,
    }
    if demo.language is not None:
        contact["language"] = demo.language
    return {
        "account_id": demo.account_id,
        "plan": demo.plan,
        "contact": contact,
        "currency": demo.currency,
        "created_at": _iso(now - timedelta(days=400)),
        "exempt": demo.exempt,
        "invoices": [] if demo.overdue_days is None else [_invoice(demo, now)],
        "instalments": _instalments(demo.account_id, now),
        "services": [service],
    }


def _invoice(demo: _Demo, now: datetime) -> dict[str, Any]:
    """Return the demo's open invoice, due `overdue_days` before `now`."""
    assert demo.overdue_days is not None  # only called for accounts with an open invoice
    due_at = now - timedelta(days=demo.overdue_days)
    issued_at = due_at - timedelta(days=14)
    month = issued_at.strftime("%B %Y")
    total = sum((Decimal(amount) for _text, amount in demo.items), Decimal(0))
    return {
        "id": f"INV-{issued_at:%Y%m}-{demo.account_id.upper()}",
        "issued_at": _iso(issued_at),
        "due_at": _iso(due_at),
        "total": _amount(total, demo.currency),
        "amount_due": _amount(total - Decimal(demo.paid), demo.currency),
        "items": [
            {"description": text.format(month=month), "amount": amount}
            for text, amount in demo.items
        ],
    }


def _amount(value: Decimal, currency: str) -> int | str:
    """Return an amount for the document: an integer for yen (no minor unit), else a string."""
    return int(value) if currency == "JPY" else str(value)


def _iso(moment: datetime) -> str:
    """Return `moment` as ISO 8601 with its offset, the form the parser requires."""
    return moment.isoformat()


def _instalments(account_id: str, now: datetime) -> list[dict[str, Any]]:
    """Return golf's payment plan: three instalments, the first paid, the next in a week."""
    if account_id != "golf":
        return []
    return [
        {"due_at": _iso(now - timedelta(days=7)), "amount": "30.00", "paid": True},
        {"due_at": _iso(now + timedelta(days=7)), "amount": "30.00", "paid": False},
        {"due_at": _iso(now + timedelta(days=37)), "amount": "30.00", "paid": False},
    ]
