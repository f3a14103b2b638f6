"""Amounts finer than their currency's minor unit are refused, naming the row and field;
the rest of the data still syncs."""

from __future__ import annotations

from decimal import Decimal

import pytest

from daemon.billing.fields import FieldError
from daemon.billing.flat import FLAT_COLUMNS
from daemon.billing.minor_units import whole_minor_units
from daemon.billing.parse import parse_document, parse_flat
from tests.unit.billing.helpers import account_rows, nested_account


@pytest.mark.parametrize(
    ("amount", "currency", "ok"),
    [
        ("10.005", "EUR", False),
        ("10.50", "EUR", True),
        ("10.500", "EUR", True),  # trailing zeros are not finer
        ("1.5", "JPY", False),
        ("1200", "JPY", True),
        ("0.001", "USD", False),
        ("1.234", "KWD", True),  # three decimals in dinars
        ("-0.005", "EUR", False),  # a discount too
    ],
)
def test_whole_minor_units(amount: str, currency: str, ok: bool) -> None:
    if ok:
        assert whole_minor_units(Decimal(amount), currency, "x") == Decimal(amount)
        return
    with pytest.raises(FieldError) as refused:
        whole_minor_units(Decimal(amount), currency, "invoice_total")
    assert refused.value.field == "invoice_total"
    assert f"{amount} {currency} is finer than the currency's smallest unit" in str(
        refused.value.message
    )


def test_a_nested_account_with_a_tenth_of_a_cent_is_refused_and_the_rest_syncs() -> None:
    bad = nested_account("bad")
    bad["invoices"][0]["items"][0]["amount"] = "20.005"
    result = parse_document({"accounts": [nested_account("good"), bad]}, "billing.json")
    assert [s.account_id for s in result.snapshots] == ["good"]
    (error,) = result.errors
    assert (error.row, error.field) == ("#1 (account bad)", "invoices[0].items[0].amount")
    assert "20.005 EUR is finer" in error.message


def test_a_flat_row_with_half_a_yen_is_refused_naming_its_row() -> None:
    yen = [
        row | {"currency": "JPY", "invoice_total": "2400", "invoice_amount_due": "2400"}
        for row in account_rows("bad")
    ]
    yen[0]["item_amount"], yen[1]["item_amount"] = "2000", "399.5"
    rows = [*account_rows("good"), *yen]
    result = parse_flat(
        FLAT_COLUMNS, [(n, tuple(r.values())) for n, r in enumerate(rows, 2)], "billing.csv", "line"
    )
    assert [s.account_id for s in result.snapshots] == ["good"]
    (error,) = result.errors
    assert (error.row, error.field) == ("line 5", "item_amount")
    assert "399.5 JPY is finer" in error.message
