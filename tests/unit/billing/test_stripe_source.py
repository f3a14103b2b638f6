"""The stripe source against recorded Stripe API answers replayed on loopback."""

from __future__ import annotations

import copy
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from daemon.billing.base import BillingError
from daemon.billing.dispatch import create_source
from daemon.billing.stripe import amount
from daemon.config.schema import StripeBilling
from tests.unit.billing.replay import recorded, replay

KEY = "rk_test_lapse_read_only_4242"
ANSWERS = recorded("stripe")


def stripe_api(
    method: str, path: str, query: dict[str, str], headers: dict[str, str]
) -> tuple[int, Any]:
    """Stripe's API: bearer key, list objects paged by starting_after."""
    if headers.get("Authorization") != f"Bearer {KEY}":
        return 401, {
            "error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}
        }
    if method != "GET" or query.get("limit") != "100":
        return 400, {"error": {"type": "invalid_request_error", "message": "bad request"}}
    if path == "/v1/customers":
        page = 1 if query.get("starting_after") == "cus_Q2newsletter" else 0
        return 200, ANSWERS["customers"][page]
    if path == "/v1/invoices" and query.get("status") == "open":
        return 200, ANSWERS["invoices"][0]
    return 404, {"error": {"type": "invalid_request_error", "message": f"No such path {path}"}}


def _source(tmp_path: Path, url: str, key: str = KEY) -> Any:
    (tmp_path / "key").write_text(key + "\n")
    config = StripeBilling.model_validate(
        {"type": "stripe", "api_key": {"file": str(tmp_path / "key")}, "url": url}
    )
    return create_source(config)


def test_hosting_customers_and_open_invoices_become_snapshots(tmp_path: Path) -> None:
    with replay(stripe_api) as (url, seen):
        result = _source(tmp_path, url).fetch_all()

    accounts = {s.account_id: s for s in result.snapshots}
    # The newsletter customer has no services: not a hosting account.
    assert sorted(accounts) == ["cus_Q1bakery", "cus_Q3tokyo"]
    bakery = accounts["cus_Q1bakery"]
    assert bakery.plan == "business" and bakery.currency == "EUR"
    assert bakery.balance == Decimal("13.56")  # what remains after a partial payment
    (invoice,) = bakery.invoices
    assert invoice.id == "B4K3RY-0012" and invoice.total == Decimal("23.56")
    assert invoice.due_at.isoformat() == "2026-10-16T00:00:00+00:00"
    assert [(i.description, i.amount) for i in invoice.items] == [
        ("Starter hosting (Oct 2026)", Decimal("9.90")),
        ("Shop hosting (Oct 2026)", Decimal("9.90")),
    ]
    assert [(s.host, s.system_user, s.domains) for s in bakery.services] == [
        ("web1", "bakery", ("bakery.example",))
    ]
    tokyo = accounts["cus_Q3tokyo"]
    assert tokyo.currency == "JPY" and tokyo.balance == Decimal("1500")  # no cents in yen
    # Customers were read in two pages.
    customer_pages = [r.get("starting_after") for r in seen if r["_path"] == "/v1/customers"]
    assert customer_pages == [None, "cus_Q2newsletter"]
    # Bad services metadata skips that customer, naming it and the field.
    (error,) = result.errors
    assert "cus_Q4broken" in str(error) and "services" in str(error)


def test_zero_decimal_and_two_decimal_currencies_convert_exactly() -> None:
    assert amount(1999, "usd") == Decimal("19.99")
    assert amount(1999, "JPY") == Decimal("1999")
    assert amount(5, "eur") == Decimal("0.05")
    assert amount("19.99", "eur").is_nan()


def test_a_refused_key_is_a_clear_error_without_the_key(tmp_path: Path) -> None:
    with replay(stripe_api) as (url, _seen), pytest.raises(BillingError) as caught:
        _source(tmp_path, url, key="sk_test_wrong").fetch_all()
    message = str(caught.value)
    assert "GET /v1/customers answered 401 Unauthorized: Invalid API Key provided" in message
    assert "sk_test_wrong" not in message


def test_a_customer_credit_balance_is_a_credit_that_lowers_the_balance(tmp_path: Path) -> None:
    """Stripe keeps a customer's credit as a negative `balance` (minor units) and applies
    it only to invoices finalized later: it is shown as a credit against the open ones."""
    answers = copy.deepcopy(ANSWERS)
    for customer in answers["customers"][0]["data"] + answers["customers"][1]["data"]:
        if customer["id"] == "cus_Q3tokyo":
            customer["balance"] = -500
        if customer["id"] == "cus_Q1bakery":
            customer["balance"] = 250  # a debit Stripe adds to the next invoice: no credit

    def api(method: str, path: str, query: dict[str, str], headers: dict[str, str]) -> Any:
        status, body = stripe_api(method, path, query, headers)
        if path == "/v1/customers" and status == 200:
            body = answers["customers"][1 if query.get("starting_after") else 0]
        return status, body

    with replay(api) as (url, _seen):
        result = _source(tmp_path, url).fetch_all()
    accounts = {s.account_id: s for s in result.snapshots}
    tokyo = accounts["cus_Q3tokyo"]
    assert [(c.description, c.amount, c.kind) for c in tokyo.credits] == [
        ("Account credit", Decimal("500"), "credit")
    ]
    assert tokyo.balance == Decimal("1000")
    assert accounts["cus_Q1bakery"].credits == ()
    assert accounts["cus_Q1bakery"].balance == Decimal("13.56")
