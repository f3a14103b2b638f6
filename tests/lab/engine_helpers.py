"""Building a real Lapse app on a temp directory for lifecycle tests."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from daemon.config.load import validate_config
from daemon.config.schema import ALL_WEEKDAYS
from daemon.domain.clock import VirtualClock
from daemon.runtime.app import App, build_app
from daemon.store.models import Account


def account(account_id: str, due_at: datetime | None, balance: str = "120.00") -> dict[str, Any]:
    """One account in the nested billing format, owing `balance` EUR due at `due_at`."""
    invoices = []
    if due_at is not None:
        invoices.append(
            {
                "id": f"INV-{account_id}",
                "due_at": due_at.isoformat(),
                "total": balance,
                "items": [{"description": "Web hosting", "amount": balance}],
            }
        )
    return {
        "account_id": account_id,
        "plan": "default",
        "contact": {
            "name": f"Client {account_id}",
            "email": f"{account_id}@example.org",
            "timezone": "Europe/Berlin",
        },
        "currency": "EUR",
        "balance": balance if due_at is not None else "0",
        "invoices": invoices,
        "services": [],
    }


def write_billing(path: Path, accounts: list[dict[str, Any]]) -> None:
    """Write the nested billing document the file source reads."""
    path.write_text(json.dumps({"accounts": accounts}))


def make_app(
    tmp_path: Path, state_url: str, clock: VirtualClock, *, anytime: bool = False, **policy: Any
) -> App:
    """A real app: the given state DB, file billing and an outbox, all under tmp_path.

    `anytime` switches contact hours off, for tests that run on the real clock.
    """
    if anytime:
        policy = {"quiet_hours": "", "contact_days": list(ALL_WEEKDAYS)} | policy
    raw = {
        "state": {"url": state_url},
        "billing": {"type": "file", "path": str(tmp_path / "billing.json")},
        "backup": {"store": {"type": "local", "path": str(tmp_path / "backups")}},
        "notices": {"notifier": {"type": "outbox", "path": str(tmp_path / "outbox")}},
        "policy": {"default": policy},
    }
    config = validate_config(raw, source="test", base_dir=tmp_path)
    return build_app(config, clock)


def _next_wake(app: App) -> tuple[str, datetime] | None:
    """The account with the earliest recorded wake-up and that wake-up, or None when no
    account has one."""
    with app.sessions() as session:
        due = session.execute(
            select(Account.id, Account.next_wake_at)
            .where(Account.next_wake_at.is_not(None))
            .order_by(Account.next_wake_at)
        ).first()
    if due is None:
        return None
    account_id, wake_at = due
    assert wake_at is not None  # the query keeps only accounts that have one
    return account_id, wake_at


def run_days(app: App, clock: VirtualClock, days: int) -> None:
    """Advance the virtual clock, waking each account at its recorded deadline, as the
    scheduler would, until `days` have passed."""
    end = clock.now + timedelta(days=days)
    while True:
        due = _next_wake(app)
        if due is None or due[1] > end:
            clock.set(max(clock.now, end))
            return
        clock.set(max(clock.now, due[1]))
        app.lifecycle.wake(due[0])
