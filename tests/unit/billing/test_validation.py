"""Single-value checks and parser details that every source relies on."""

from __future__ import annotations

import gc
import re
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from daemon.billing import fields as f
from daemon.billing.fields import FieldError
from daemon.billing.flat import FLAT_COLUMNS, paused_gc
from daemon.billing.parse import parse_document, parse_flat
from tests.unit.billing.helpers import flat_row, nested_account


@pytest.mark.parametrize("path", ["/", "//", "/./", "srv/www", "/srv/../etc", "/srv/www/.."])
def test_docroot_refuses_paths_that_could_reach_outside_a_site(path: str) -> None:
    with pytest.raises(FieldError) as refused:
        f.docroot(path, "docroot")
    assert refused.value.field == "docroot"


@pytest.mark.parametrize(
    "path",
    [
        "/srv/www/a$(reboot)",
        "/srv/www/a`id`",
        "/srv/www/it's",
        '/srv/w"w',
        "/srv/www/a;b",
        "/srv/www/{x}",
        "/srv/www/a b",
        "/srv/www/a\\b",
    ],
)
def test_docroot_refuses_characters_that_mean_something_to_shells_or_configs(path: str) -> None:
    with pytest.raises(FieldError, match=re.escape("letters, digits and / . _ - + @ ~ , = : only")):
        f.docroot(path, "docroot")


def test_docroot_accepts_an_absolute_site_path() -> None:
    assert f.docroot("/home/user_1/sites/shop.example-2+x@y~z,w=v:q", "docroot")
    assert f.docroot(" /srv/www/acme ", "docroot") == "/srv/www/acme"


def test_moment_reads_text_and_driver_values_as_utc_and_refuses_naive_ones() -> None:
    berlin = timezone(timedelta(hours=1))
    expected = datetime(2026, 2, 1, 9, 0, tzinfo=UTC)
    assert f.moment("2026-02-01T10:00:00+01:00", "t") == expected
    assert f.moment("2026-02-01T09:00:00Z", "t") == expected
    assert f.moment(datetime(2026, 2, 1, 10, 0, tzinfo=berlin), "t") == expected
    assert f.moment(date(2026, 2, 1), "t") == datetime(2026, 2, 1, tzinfo=UTC)
    with pytest.raises(FieldError, match="UTC offset"):
        f.moment(datetime(2026, 2, 1, 9, 0), "t")  # noqa: DTZ001  # the naive value under test
    with pytest.raises(FieldError, match="UTC offset"):
        f.moment("2026-02-01T09:00:00", "t")


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-1", "12,50", True, None, [1]])
def test_money_refuses_what_is_not_a_finite_amount(value: object) -> None:
    with pytest.raises(FieldError):
        f.money(value, "amount")


def test_money_reads_text_numbers_and_decimals_exactly() -> None:
    assert f.money("24.90", "a") == Decimal("24.90")
    assert f.money(3300, "a") == Decimal(3300)
    assert f.money(9.99, "a") == Decimal("9.99")
    assert f.money("-5", "a", negative=True) == Decimal(-5)


def test_flat_rows_may_carry_native_values_and_none() -> None:
    row = flat_row("acme") | {
        "exempt": None,
        "invoice_due_at": datetime(2026, 2, 1, tzinfo=UTC),
        "invoice_total": Decimal("24.00"),
        "invoice_amount_due": None,
        "item_amount": Decimal("24.00"),
        "contact_timezone": None,
    }
    result = parse_flat(FLAT_COLUMNS, [(1, tuple(row.values()))], "db", "row")

    assert result.errors == ()
    (acme,) = result.snapshots
    assert (acme.balance, acme.exempt, acme.contact.timezone) == (Decimal("24.00"), False, "UTC")


def test_flat_blank_account_id_is_an_error_on_each_of_its_rows() -> None:
    rows = [(1, tuple(flat_row("").values())), (2, tuple(flat_row(" ").values()))]

    result = parse_flat(FLAT_COLUMNS, rows, "db", "row")

    assert result.snapshots == ()
    assert [(e.row, e.field) for e in result.errors] == [
        ("row 1", "account_id"),
        ("row 2", "account_id"),
    ]


def test_flat_item_without_an_invoice_is_refused() -> None:
    row = flat_row("acme") | dict.fromkeys(("invoice_id", "invoice_due_at", "invoice_total"), "")
    result = parse_flat(FLAT_COLUMNS, [(7, tuple(row.values()))], "db", "row")

    assert [(e.row, e.field) for e in result.errors] == [("row 7", "invoice_amount_due")]


def test_nested_invoice_in_another_currency_is_refused() -> None:
    account = nested_account("acme")
    account["invoices"][0]["currency"] = "USD"

    result = parse_document({"accounts": [account]}, "doc")

    assert [(e.row, e.field) for e in result.errors] == [
        ("#0 (account acme)", "invoices[0].currency")
    ]


def test_nested_entry_that_is_not_an_object_is_skipped() -> None:
    result = parse_document([nested_account("acme"), "zen"], "doc")

    assert [s.account_id for s in result.snapshots] == ["acme"]
    assert [(e.row, e.field) for e in result.errors] == [("#1", "(account)")]


def test_paused_gc_restores_the_collector_even_on_error() -> None:
    assert gc.isenabled()
    with pytest.raises(RuntimeError), paused_gc():
        assert not gc.isenabled()
        raise RuntimeError
    assert gc.isenabled()
    gc.disable()
    try:
        with paused_gc():
            pass
        assert not gc.isenabled()  # it was off before, so it stays off
    finally:
        gc.enable()
