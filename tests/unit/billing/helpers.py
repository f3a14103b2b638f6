"""Builders of billing data shared by the billing tests (unit and lab)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from daemon.billing.dispatch import create_source
from daemon.billing.flat import FLAT_COLUMNS
from daemon.billing.sql import SqlSource
from daemon.config.schema import SqlBilling


def flat_row(account_id: str, **overrides: str) -> dict[str, str]:
    """Return one flat row of an account owing 24.00 EUR on INV-<id>, line "Hosting" 20.00.

    A second row with item_description="Domain", item_amount="4.00" completes the invoice.
    """
    row = {
        "account_id": account_id,
        "plan": "default",
        "contact_name": f"Client {account_id}",
        "contact_email": f"{account_id}@example.com",
        "contact_timezone": "Europe/Berlin",
        "currency": "EUR",
        "created_at": "2024-01-01T00:00:00Z",
        "exempt": "false",
        "host": "web1",
        "system_user": account_id,
        "docroot": f"/srv/www/{account_id}",
        "domains": f"{account_id}.example.test www.{account_id}.example.test",
        "databases": f"mariadb:{account_id}_wp:{account_id} postgresql:{account_id}_app",
        "invoice_id": f"INV-{account_id}",
        "invoice_due_at": "2026-02-01T00:00:00Z",
        "invoice_total": "24.00",
        "invoice_amount_due": "24.00",
        "item_description": "Hosting",
        "item_amount": "20.00",
    }
    return row | overrides


def account_rows(account_id: str, **overrides: str) -> list[dict[str, str]]:
    """Return both rows of a flat_row account (Hosting 20.00 + Domain 4.00)."""
    return [
        flat_row(account_id, **overrides),
        flat_row(account_id, **overrides) | {"item_description": "Domain", "item_amount": "4.00"},
    ]


def paid_row(account_id: str) -> dict[str, str]:
    """Return the one row of an account that owes nothing: invoice and item columns blank."""
    blank = dict.fromkeys(
        ("invoice_id", "invoice_due_at", "invoice_total", "invoice_amount_due"), ""
    )
    return flat_row(account_id) | blank | {"item_description": "", "item_amount": ""}


def write_csv(
    path: Path, rows: list[dict[str, str]], columns: tuple[str, ...] = FLAT_COLUMNS
) -> None:
    """Write `rows` to `path` under a header of `columns`."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def nested_account(account_id: str, **overrides: Any) -> dict[str, Any]:
    """Return a nested-format account owing 24.00 EUR on one invoice with two lines."""
    record: dict[str, Any] = {
        "account_id": account_id,
        "plan": "default",
        "contact": {
            "name": f"Client {account_id}",
            "email": f"{account_id}@example.com",
            "timezone": "Europe/Berlin",
        },
        "currency": "EUR",
        "created_at": "2024-01-01T00:00:00Z",
        "exempt": False,
        "invoices": [
            {
                "id": f"INV-{account_id}",
                "issued_at": "2026-01-18",
                "due_at": "2026-02-01T00:00:00+01:00",
                "total": "24.00",
                "amount_due": "24.00",
                "items": [
                    {"description": "Hosting", "amount": "20.00"},
                    {"description": "Domain", "amount": 4},
                ],
            }
        ],
        "services": [
            {
                "host": "web1",
                "system_user": account_id,
                "docroot": f"/srv/www/{account_id}",
                "domains": [f"{account_id}.example.test"],
                "databases": [{"engine": "postgresql", "name": f"{account_id}_app"}],
            }
        ],
    }
    return record | overrides


def fill_billing_table(url: str, rows: list[dict[str, str]]) -> None:
    """Create the table billing_lines (the flat columns, as text) at `url` and insert `rows`."""
    engine = create_engine(url)
    columns = ", ".join(f"{name} VARCHAR(200)" for name in FLAT_COLUMNS)
    placeholders = ", ".join(f":{name}" for name in FLAT_COLUMNS)
    with engine.begin() as connection:
        connection.execute(text(f"CREATE TABLE billing_lines ({columns})"))
        # Our own column names, not input: nothing to inject.
        insert = f"INSERT INTO billing_lines VALUES ({placeholders})"
        connection.execute(text(insert), rows)
    engine.dispose()


def sql_source(url: str, query: str = "SELECT * FROM billing_lines") -> SqlSource:
    """Return the sql source for `url` and `query`, built the way the daemon builds it."""
    source = create_source(SqlBilling(type="sql", url=url, query=query))
    assert isinstance(source, SqlSource)
    return source
