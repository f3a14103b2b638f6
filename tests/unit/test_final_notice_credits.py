"""The final notice shows credits and unapplied payments: items, credits and the total
due add up on the page, whatever the billing source said."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from daemon.billing.parse import parse_document
from daemon.config.schema import BrandConfig, PolicyConfig
from daemon.domain.notice_kinds import NoticeKind
from daemon.domain.snapshot import AccountSnapshot
from daemon.domain.states import State
from daemon.notices.compose import compose
from daemon.notices.request import NoticeRequest
from daemon.notices.templates import create_environment
from daemon.policy import LifecycleRecord
from tests.unit.billing.helpers import nested_account

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
BRAND = BrandConfig(company_name="Example Hosting", sender="Billing <billing@example.com>")


def read(**overrides: object) -> AccountSnapshot:
    """One account read by the nested source: 24.00 EUR open (Hosting 20.00, Domain 4.00)."""
    result = parse_document({"accounts": [nested_account("acme", **overrides)]}, "billing.json")
    assert result.errors == ()
    (snapshot,) = result.snapshots
    return snapshot


def final_text(snapshot: AccountSnapshot) -> tuple[str, str]:
    record = LifecycleRecord(
        account_id="acme",
        state=State.FINAL_NOTICE,
        suspend_at=NOW + timedelta(days=7),
        delete_at=NOW + timedelta(days=37),
        reminders_sent=1,
    )
    request = NoticeRequest(NoticeKind.FINAL, 0, snapshot, record, PolicyConfig(), NOW)
    message = compose(request, BRAND, create_environment(None)).message()
    parts = [message.get_body(preferencelist=(kind,)) for kind in ("plain", "html")]
    text, html = (str(part.get_content()) for part in parts if part is not None)
    return text, html


def amounts(text: str) -> list[Decimal]:
    """The money on the lines that make up the total, in order: open invoice amounts
    (the line totals when nothing was paid), credits, adjustments, then the total."""
    lines = [
        line
        for line in text.splitlines()
        if re.match(r"\s+(Invoice total|Still open|- .*\(payment received\)|- Credit)", line)
        or line.startswith(("Other adjustments", "Total due"))
    ]
    return [Decimal(re.sub(r"[^\d.-]", "", line.rsplit(":", 1)[1])) for line in lines]


CREDITS = [
    {"description": "Credit note CN-3", "amount": "5.00"},
    {"description": "Transfer of 28 February", "amount": "10.50", "kind": "payment"},
]


def test_credits_and_unapplied_payments_are_listed_and_the_page_adds_up() -> None:
    snapshot = read(credits=CREDITS)
    assert snapshot.balance == Decimal("8.50")  # 24.00 - 5.00 - 10.50
    text, html = final_text(snapshot)
    assert "  - Credit note CN-3: -€5.00" in text
    assert "  - Transfer of 28 February (payment received): -€10.50" in text
    assert "Total due: €8.50" in text
    assert "Other adjustments" not in text
    *parts, total = amounts(text)
    assert parts == [Decimal("24.00"), Decimal("-5.00"), Decimal("-10.50")]
    assert sum(parts) == total
    assert "Credit note CN-3" in html and "-€10.50" in html


def test_a_stated_balance_that_differs_shows_the_difference_so_the_page_adds_up() -> None:
    """The billing system says 12.00 is owed: 3.50 more than invoices less credits show."""
    snapshot = read(credits=CREDITS, balance="12.00")
    text, _html = final_text(snapshot)
    assert "Other adjustments on your account: €3.50" in text
    *parts, total = amounts(text)
    assert total == Decimal("12.00") and sum(parts) == total


def test_without_credits_the_notice_is_as_before() -> None:
    text, _html = final_text(read())
    assert "Credits and payments" not in text and "Other adjustments" not in text
    *parts, total = amounts(text)
    assert sum(parts) == total == Decimal("24.00")
