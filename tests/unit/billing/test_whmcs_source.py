"""The whmcs source against recorded WHMCS API answers replayed on loopback."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from daemon.billing.base import BillingError
from daemon.billing.dispatch import create_source
from daemon.config.schema import WhmcsBilling
from tests.unit.billing.replay import recorded, replay

IDENTIFIER, SECRET = "lapse-api-id", "whmcs-secret-0815"
ANSWERS = recorded("whmcs")


def whmcs_api(
    method: str, path: str, form: dict[str, str], headers: dict[str, str]
) -> tuple[int, Any]:
    """WHMCS's API: POST includes/api.php, credentials in the form, result/message."""
    if method != "POST" or path != "/includes/api.php":
        return 404, {"result": "error", "message": "not found"}
    if (form.get("identifier"), form.get("secret")) != (IDENTIFIER, SECRET):
        return 403, {"result": "error", "message": "Authentication Failed"}
    if form.get("responsetype") != "json":
        return 400, {"result": "error", "message": "responsetype must be json"}
    action = form.get("action", "")
    if action == "GetClientsProducts":
        page = int(form["limitstart"]) // 2  # the recording holds pages of two
        return 200, ANSWERS[action][page]
    if action == "GetInvoices":
        assert form.get("status") == "Unpaid"
        return 200, ANSWERS[action]
    if action == "GetInvoice":
        return 200, ANSWERS[f"GetInvoice-{form['invoiceid']}"]
    if action in ANSWERS:
        return 200, ANSWERS[action]
    return 200, {"result": "error", "message": f"Command Not Found: {action}"}


def _source(tmp_path: Path, url: str, secret: str = SECRET, **extra: Any) -> Any:
    (tmp_path / "secret").write_text(secret)
    config = WhmcsBilling.model_validate(
        {
            "type": "whmcs",
            "url": url,
            "identifier": {"env": "LAPSE_TEST_WHMCS_ID"},
            "secret": {"file": str(tmp_path / "secret")},
            "servers": {"cpanel-01": "web1"},
            "page_size": 2,
            **extra,
        }
    )
    return create_source(config)


@pytest.fixture(autouse=True)
def _identifier(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAPSE_TEST_WHMCS_ID", IDENTIFIER)


def test_clients_services_and_unpaid_invoices_become_snapshots(tmp_path: Path) -> None:
    with replay(whmcs_api) as (url, seen):
        result = _source(tmp_path, url).fetch_all()

    assert list(result.errors) == []
    accounts = {s.account_id: s for s in result.snapshots}
    assert sorted(accounts) == ["whmcs-11", "whmcs-12", "whmcs-13"]
    rita = accounts["whmcs-11"]
    assert rita.contact.name == "Rita Riverside" and rita.contact.email == "rita@bakery.example"
    assert rita.balance == Decimal("13.56") and rita.currency == "EUR"
    (invoice,) = rita.invoices
    assert invoice.id == "2026-0142" and invoice.amount_due == Decimal("13.56")
    assert invoice.due_at.isoformat() == "2026-10-16T00:00:00+00:00"
    assert invoice.items[0].description.startswith("Starter - bakery.example")
    # Both live services (one active, one suspended), on the mapped Lapse host.
    assert [(s.host, s.system_user, s.docroot, s.domains) for s in rita.services] == [
        ("web1", "bakeryex", "/home/bakeryex/public_html", ("bakery.example",)),
        ("web1", "bakerysh", "/home/bakerysh/public_html", ("bakery-shop.example",)),
    ]
    acme = accounts["whmcs-12"]
    assert acme.exempt  # "override auto-suspend" in WHMCS
    assert acme.contact.name == "Acme Tools Ltd" and acme.balance == 0
    assert acme.services[0].host == "cpanel-02"  # unmapped servers keep their name
    olaf = accounts["whmcs-13"]
    assert olaf.services == ()  # the only product is terminated: nothing on a host
    assert olaf.currency == "USD" and olaf.balance == Decimal("12.00")
    # Products were read in two pages; each unpaid invoice's lines were fetched.
    product_pages = [r["limitstart"] for r in seen if r.get("action") == "GetClientsProducts"]
    assert product_pages == ["0", "2"]
    assert sorted(r["invoiceid"] for r in seen if r.get("action") == "GetInvoice") == [
        "5001",
        "5002",
    ]


def test_refused_credentials_are_a_clear_error_without_the_secret(tmp_path: Path) -> None:
    with replay(whmcs_api) as (url, _seen), pytest.raises(BillingError) as caught:
        _source(tmp_path, url, secret="wrong-secret").fetch_all()
    message = str(caught.value)
    assert "GetClients answered 403 Forbidden: Authentication Failed" in message
    assert "wrong-secret" not in message and IDENTIFIER not in message


def test_an_api_error_names_the_action(tmp_path: Path) -> None:
    def failing(method: str, path: str, form: dict[str, str], headers: dict[str, str]):  # type: ignore[no-untyped-def]
        if form.get("action") == "GetInvoices":
            return 200, {"result": "error", "message": "Invalid status"}
        return whmcs_api(method, path, form, headers)

    with (
        replay(failing) as (url, _seen),
        pytest.raises(BillingError, match="GetInvoices failed: Invalid status"),
    ):
        _source(tmp_path, url).fetch_all()


def test_a_malformed_client_is_skipped_with_a_named_error(tmp_path: Path) -> None:
    def bad_balance(method: str, path: str, form: dict[str, str], headers: dict[str, str]):  # type: ignore[no-untyped-def]
        status, body = whmcs_api(method, path, form, headers)
        if form.get("action") == "GetInvoice" and form.get("invoiceid") == "5002":
            body = body | {"balance": "twelve"}
        return status, body

    with replay(bad_balance) as (url, _seen):
        result = _source(tmp_path, url).fetch_all()

    assert sorted(s.account_id for s in result.snapshots) == ["whmcs-11", "whmcs-12"]
    (error,) = result.errors
    assert "whmcs-13" in str(error) and "amount_due" in str(error)
