"""Credits and unapplied payments, as each source states them: they lower the balance,
travel with the snapshot, and bad ones are refused naming the row and field."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from sqlalchemy import create_engine, text

from daemon.billing.flat import FLAT_COLUMNS
from daemon.billing.parse import parse_document, parse_flat
from daemon.domain.snapshot import SyncResult
from daemon.domain.stored_snapshot import snapshot_from_json, snapshot_to_json
from tests.unit.billing.helpers import account_rows, nested_account, sql_source

WITH_CREDITS = (*FLAT_COLUMNS, "credit", "unapplied_payments")


def flat(rows: list[dict[str, str]], columns: tuple[str, ...] = WITH_CREDITS) -> SyncResult:
    table = [(n, tuple(row.get(c, "") for c in columns)) for n, row in enumerate(rows, 2)]
    return parse_flat(columns, table, "billing.csv", "line")


def test_flat_credit_columns_lower_the_balance_and_are_listed() -> None:
    rows = [row | {"credit": "3.00", "unapplied_payments": "10.50"} for row in account_rows("a")]
    result = flat(rows)
    (snapshot,) = result.snapshots
    assert snapshot.balance == Decimal("10.50")  # 24.00 - 3.00 - 10.50
    assert [(c.description, c.amount, c.kind) for c in snapshot.credits] == [
        ("Account credit", Decimal("3.00"), "credit"),
        ("Payments received, not yet applied", Decimal("10.50"), "payment"),
    ]
    # Stored with the account and read back the same.
    assert snapshot_from_json(snapshot_to_json(snapshot)) == snapshot


def test_flat_tables_without_the_columns_or_with_blank_cells_read_as_before() -> None:
    (plain,) = flat(account_rows("a"), FLAT_COLUMNS).snapshots
    (blank,) = flat(account_rows("a")).snapshots
    assert plain == blank
    assert plain.credits == () and plain.balance == Decimal("24.00")
    assert "credits" not in snapshot_to_json(plain)  # the stored digest is unchanged


def test_flat_credit_refusals_name_the_row_and_column() -> None:
    rows = [
        *account_rows("good"),
        *[row | {"credit": "0.005"} for row in account_rows("fine")],
        *[row | {"unapplied_payments": "-4"} for row in account_rows("negative")],
        account_rows("torn")[0] | {"credit": "1.00"},
        account_rows("torn")[1] | {"credit": "2.00"},
    ]
    result = flat(rows)
    assert [s.account_id for s in result.snapshots] == ["good"]
    found = [(e.row, e.field) for e in result.errors]
    assert found == [("line 4", "credit"), ("line 6", "unapplied_payments"), ("line 9", "credit")]


def test_nested_credits_refuse_an_unknown_kind_and_a_negative_amount() -> None:
    accounts = [
        nested_account("good", credits=[{"description": "Refund", "amount": "1.00"}]),
        nested_account("kind", credits=[{"description": "x", "amount": "1", "kind": "gift"}]),
        nested_account("minus", credits=[{"description": "x", "amount": "-1"}]),
    ]
    result = parse_document({"accounts": accounts}, "billing.json")
    assert [s.account_id for s in result.snapshots] == ["good"]
    assert [e.field for e in result.errors] == ["credits[0].kind", "credits[0].amount"]
    assert result.snapshots[0].balance == Decimal("23.00")


def test_the_sql_source_reads_the_credit_columns(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'billing.db'}"
    engine = create_engine(url)
    columns = ", ".join(f"{name} VARCHAR(200)" for name in WITH_CREDITS)
    rows = [row | {"credit": "4.00", "unapplied_payments": ""} for row in account_rows("a")]
    with engine.begin() as connection:
        connection.execute(text(f"CREATE TABLE billing_lines ({columns})"))
        values = ", ".join(f":{name}" for name in WITH_CREDITS)
        connection.execute(text(f"INSERT INTO billing_lines VALUES ({values})"), rows)
    engine.dispose()
    (snapshot,) = sql_source(url).fetch_all().snapshots
    assert snapshot.balance == Decimal("20.00")
    assert [c.amount for c in snapshot.credits] == [Decimal("4.00")]
