"""The file source: JSON and CSV files on disk, good and malformed."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from daemon.billing.base import BillingError
from daemon.billing.dispatch import create_source
from daemon.billing.file import FileSource
from daemon.billing.flat import FLAT_COLUMNS
from daemon.config.schema import FileBilling
from daemon.domain.snapshot import SyncResult
from tests.unit.billing.helpers import (
    account_rows,
    flat_row,
    nested_account,
    paid_row,
    write_csv,
)


def read(path: Path, format: str = "auto") -> SyncResult:
    """Read `path` through the source the config would build."""
    config = FileBilling.model_validate({"type": "file", "path": str(path), "format": format})
    source = create_source(config)
    assert isinstance(source, FileSource)
    return source.fetch_all()


def write_json(path: Path, accounts: list[Any]) -> None:
    path.write_text(json.dumps({"accounts": accounts}), encoding="utf-8")


# --- JSON ---------------------------------------------------------------------------------


def test_json_roundtrip_reads_every_key(tmp_path: Path) -> None:
    path = tmp_path / "billing.json"
    plan = [{"due_at": "2026-03-01", "amount": "12.00", "paid": True}]
    write_json(path, [nested_account("acme", instalments=plan, exempt=True)])

    result = read(path)

    assert result.errors == ()
    (acme,) = result.snapshots
    assert (acme.account_id, acme.plan, acme.currency) == ("acme", "default", "EUR")
    assert (acme.contact.name, acme.contact.email, acme.contact.timezone) == (
        "Client acme",
        "acme@example.com",
        "Europe/Berlin",
    )
    assert acme.created_at == datetime(2024, 1, 1, tzinfo=UTC)
    assert acme.exempt is True
    assert acme.balance == Decimal("24.00")
    (invoice,) = acme.invoices
    assert invoice.id == "INV-acme"
    assert invoice.due_at == datetime(2026, 1, 31, 23, 0, tzinfo=UTC)  # +01:00 read as UTC
    assert invoice.issued_at == datetime(2026, 1, 18, tzinfo=UTC)
    assert invoice.currency == "EUR"
    assert [(i.description, i.amount) for i in invoice.items] == [
        ("Hosting", Decimal("20.00")),
        ("Domain", Decimal(4)),
    ]
    (service,) = acme.services
    assert (service.host, service.system_user, service.docroot) == ("web1", "acme", "/srv/www/acme")
    assert service.domains == ("acme.example.test",)
    assert [(db.engine, db.name, db.user) for db in service.databases] == [
        ("postgresql", "acme_app", None)
    ]
    (instalment,) = acme.instalments
    assert (instalment.amount, instalment.paid) == (Decimal("12.00"), True)


def test_json_amounts_are_read_as_exact_decimals(tmp_path: Path) -> None:
    path = tmp_path / "billing.json"
    # JSON numbers, not strings: 0.1 + 0.2 must be 0.3, as it never is in floats.
    items = [{"description": "a", "amount": 0.1}, {"description": "b", "amount": 0.2}]
    invoice = {"id": "I1", "due_at": "2026-02-01", "total": 0.3, "items": items}
    path.write_text(json.dumps([nested_account("acme", invoices=[invoice])]))

    (acme,) = read(path).snapshots

    assert sum(item.amount for item in acme.invoices[0].items) == acme.balance == Decimal("0.3")


def test_json_malformed_account_is_skipped_naming_row_and_field(tmp_path: Path) -> None:
    path = tmp_path / "billing.json"
    bad_service = nested_account("bad")["services"][0] | {"docroot": "/srv/www/../etc"}
    write_json(
        path,
        [
            nested_account("acme"),
            nested_account("bad", services=[bad_service]),
            nested_account("zen"),
        ],
    )

    result = read(path)

    assert [s.account_id for s in result.snapshots] == ["acme", "zen"]
    (error,) = result.errors
    assert error.row == "#1 (account bad)"
    assert error.field == "services[0].docroot"
    assert "'/srv/www/../etc'" in error.message
    assert str(error).startswith(f"{path}: row #1 (account bad): field 'services[0].docroot'")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"exmept": True}, "exmept"),
        ({"contact": {"name": "A", "email": "a@example.com", "tz": "UTC"}}, "contact.tz"),
        ({"currency": "eur"}, "currency"),
        ({"contact": {"name": "A", "email": "a@example.com", "timezone": "Mars/Base"}},
         "contact.timezone"),
        ({"exempt": "yes"}, "exempt"),
        ({"created_at": "2024-01-01T00:00:00"}, "created_at"),  # no offset: never guessed
        ({"balance": "-5"}, "balance"),
        ({"plan": "line\nbreak"}, "plan"),
    ],
)  # fmt: skip
def test_json_account_with_a_bad_or_unknown_key_is_skipped(
    tmp_path: Path, change: dict[str, Any], field: str
) -> None:
    path = tmp_path / "billing.json"
    write_json(path, [nested_account("acme"), nested_account("bad") | change])

    result = read(path)

    assert [s.account_id for s in result.snapshots] == ["acme"]
    assert [(e.row, e.field) for e in result.errors] == [("#1 (account bad)", field)]


def test_json_duplicated_account_id_skips_every_entry(tmp_path: Path) -> None:
    path = tmp_path / "billing.json"
    # 7 and "7" are the same account once read, so they are duplicates too.
    write_json(
        path,
        [nested_account("twin"), nested_account("acme"), nested_account("twin"),
         nested_account("7"), nested_account("x") | {"account_id": 7}],
    )  # fmt: skip

    result = read(path)

    assert [s.account_id for s in result.snapshots] == ["acme"]
    assert [(e.row, e.field) for e in result.errors] == [
        ("#0 (account twin)", "account_id"),
        ("#2 (account twin)", "account_id"),
        ("#3 (account 7)", "account_id"),
        ("#4 (account 7)", "account_id"),
    ]
    assert "#0, #2" in result.errors[0].message


def test_json_document_of_the_wrong_shape_is_a_billing_error(tmp_path: Path) -> None:
    path = tmp_path / "billing.json"
    path.write_text('{"customers": []}')
    with pytest.raises(BillingError, match=r"expected a JSON object with an 'accounts' list"):
        read(path)
    path.write_text('{"accounts": {"acme": {}}}')
    with pytest.raises(BillingError, match=r"got an object"):
        read(path)


def test_invalid_json_names_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"accounts": [\n  {"account_id": }\n]}')

    with pytest.raises(BillingError, match=r"broken.json: invalid JSON at line 2, column 18"):
        read(path)


# --- CSV ----------------------------------------------------------------------------------


def test_csv_roundtrip_groups_rows_into_accounts(tmp_path: Path) -> None:
    path = tmp_path / "billing.csv"
    # Rows of one account need not be adjacent.
    first, second = account_rows("acme")
    write_csv(path, [first, paid_row("zen"), second])

    result = read(path)

    assert result.errors == ()
    acme, zen = result.snapshots
    assert acme.balance == Decimal("24.00")
    (invoice,) = acme.invoices
    assert invoice.due_at == datetime(2026, 2, 1, tzinfo=UTC)
    assert [(i.description, i.amount) for i in invoice.items] == [
        ("Hosting", Decimal("20.00")),
        ("Domain", Decimal("4.00")),
    ]
    (service,) = acme.services
    assert service.domains == ("acme.example.test", "www.acme.example.test")
    assert [(db.engine, db.name, db.user) for db in service.databases] == [
        ("mariadb", "acme_wp", "acme"),
        ("postgresql", "acme_app", None),
    ]
    assert (zen.invoices, zen.balance) == ((), Decimal(0))


def test_csv_columns_in_any_order_and_case_extra_columns_ignored(tmp_path: Path) -> None:
    path = tmp_path / "billing.csv"
    columns = ("notes", *reversed(FLAT_COLUMNS))
    rows = [row | {"notes": "ignored"} for row in account_rows("acme")]
    write_csv(path, rows, columns)
    text = path.read_text().replace("contact_email", "Contact_Email", 1)
    path.write_text(text)

    (acme,) = read(path).snapshots

    assert acme.contact.email == "acme@example.com"


def test_csv_malformed_row_skips_its_account_naming_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "billing.csv"
    bad_first, bad_second = account_rows("bad")
    write_csv(
        path,
        [
            *account_rows("acme"),  # lines 2-3
            bad_first,  # line 4
            bad_second | {"invoice_due_at": "next tuesday"},  # line 5
            paid_row("zen"),  # line 6
        ],
    )

    result = read(path)

    assert [s.account_id for s in result.snapshots] == ["acme", "zen"]
    (error,) = result.errors
    assert (error.row, error.field) == ("line 5", "invoice_due_at")
    assert "'next tuesday'" in error.message
    assert str(path) in str(error)


def test_csv_rows_disagreeing_on_the_account_skip_it(tmp_path: Path) -> None:
    path = tmp_path / "billing.csv"
    first, second = account_rows("acme")
    write_csv(path, [first, second | {"contact_email": "other@example.com"}])

    result = read(path)

    assert result.snapshots == ()
    (error,) = result.errors
    assert (error.row, error.field) == ("line 3", "contact_email")
    assert "line 2" in error.message


def test_csv_line_numbers_count_quoted_line_breaks(tmp_path: Path) -> None:
    path = tmp_path / "billing.csv"
    # A quoted cell may span lines (domains are whitespace-separated, line breaks included);
    # U+2028 is a line break to str.splitlines() but an ordinary character to CSV.
    domains = "acme.example.test\nwww.acme.example.test"
    rows = [flat_row("acme", domains=domains, item_description="Hosting\u2028Business")]
    write_csv(path, [*rows, flat_row("bad", exempt="maybe")])

    result = read(path)

    (acme,) = result.snapshots
    assert acme.services[0].domains == ("acme.example.test", "www.acme.example.test")
    assert acme.invoices[0].items[0].description == "Hosting\u2028Business"
    (error,) = result.errors
    assert (error.row, error.field) == ("line 4", "exempt")


def test_csv_cell_with_a_line_break_in_one_line_text_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "billing.csv"
    write_csv(path, [flat_row("acme", contact_name="Ana\nBcc: victim@example.com")])

    result = read(path)

    assert result.snapshots == ()
    assert [(e.row, e.field) for e in result.errors] == [("line 2", "contact_name")]


@pytest.mark.parametrize("broken", ['zen,"default"x,', 'zen,"default,\n'])
def test_csv_broken_quoting_is_a_billing_error_naming_the_line(tmp_path: Path, broken: str) -> None:
    path = tmp_path / "billing.csv"
    write_csv(path, account_rows("acme"))
    # An unclosed quote would otherwise swallow every later row (and account) into one cell.
    path.write_text(path.read_text() + broken + "\n".join(path.read_text().splitlines()[1:]))

    with pytest.raises(BillingError, match=r"billing.csv: line 4: not valid CSV"):
        read(path)


def test_csv_row_with_the_wrong_number_of_cells_skips_its_account(tmp_path: Path) -> None:
    path = tmp_path / "billing.csv"
    write_csv(path, [*account_rows("acme"), *account_rows("zen")])
    lines = path.read_text().splitlines()
    lines[3] += ",surplus"  # zen's first row
    path.write_text("\n".join(lines) + "\n")

    result = read(path)

    assert [s.account_id for s in result.snapshots] == ["acme"]
    (error,) = result.errors
    assert (error.row, error.field) == ("line 4", "(row)")


def test_csv_missing_columns_is_a_billing_error(tmp_path: Path) -> None:
    path = tmp_path / "short.csv"
    path.write_text("account_id,plan\nacme,default\n")

    with pytest.raises(BillingError, match=r"short.csv: missing columns: contact_name, "):
        read(path)


def test_csv_empty_file_is_a_billing_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("")

    with pytest.raises(BillingError, match=r"empty.csv: the CSV file is empty"):
        read(path)


def test_explicit_format_overrides_the_extension(tmp_path: Path) -> None:
    path = tmp_path / "billing.export"
    write_csv(path, account_rows("acme"))

    assert [s.account_id for s in read(path, "csv").snapshots] == ["acme"]


# --- the file itself ----------------------------------------------------------------------


def test_missing_or_unreadable_file_is_a_billing_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(BillingError, match=rf"{missing}: cannot read the billing file"):
        read(missing)

    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("account_id\nZürich\n".encode("latin-1"))
    with pytest.raises(BillingError, match=r"latin1.csv: cannot read the billing file: not UTF-8"):
        read(latin1)


def test_unknown_extension_is_a_billing_error_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(BillingError, match=r"billing.txt: cannot tell the billing file's format"):
        read(tmp_path / "billing.txt")
