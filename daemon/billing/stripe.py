"""The `stripe` billing source: customers and their open invoices from Stripe's API.

One Lapse account is one Stripe customer, named by its customer id (`cus_...`),
which is also what Stripe's payment webhooks carry. Stripe knows nothing of
hosting, so a customer is a hosting account only when its metadata holds the
services as JSON (under `services_key`, e.g. `[{"host": "web1", "system_user":
"acme", "docroot": "/srv/www/acme", "domains": ["acme.example"]}]`); others
are ignored. The first of the customer's `preferred_locales` that names a language
CLDR knows is the contact's language. An open invoice is owed; past its due date it
is overdue. Amounts come in the currency's smallest unit and are converted exactly
(zero-decimal currencies such as JPY have no cents).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx

from daemon.billing.api import call_json
from daemon.billing.base import BillingError, BillingSource
from daemon.billing.fields import usable_language
from daemon.billing.parse import parse_document
from daemon.config.schema import StripeBilling
from daemon.config.secrets import SecretError
from daemon.domain.snapshot import SyncResult

# https://docs.stripe.com/currencies#zero-decimal
ZERO_DECIMAL = frozenset(
    {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga"}
    | {"pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"}
)
_PAGE = 100


class StripeSource(BillingSource):
    """Reads customers and open invoices on every sync; the key is read at each sync."""

    def __init__(self, config: StripeBilling) -> None:
        self.config = config
        self.base = config.url.rstrip("/")
        self.name = "Stripe" if self.base == "https://api.stripe.com" else f"Stripe at {self.base}"

    def fetch_all(self) -> SyncResult:
        """Read every hosting customer with its open invoices.

        Returns the snapshots and one RowError per customer that could not be read
        (bad services JSON, several currencies, ...). Raises BillingError when the
        API cannot be reached or refuses the key.
        """
        try:
            key = self.config.api_key.reveal()
        except SecretError as error:
            raise BillingError(f"{self.name}: {error}") from None
        headers = {"Authorization": f"Bearer {key}", "Stripe-Version": "2024-06-20"}
        timeout = self.config.timeout.total_seconds()
        with httpx.Client(headers=headers, timeout=timeout) as client:
            customers = list(self._list(client, "/v1/customers", {}))
            invoices: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for invoice in self._list(client, "/v1/invoices", {"status": "open"}):
                invoices[str(invoice.get("customer"))].append(invoice)
        accounts = [
            self._account(customer, invoices[str(customer.get("id"))])
            for customer in customers
            if self.config.services_key in (customer.get("metadata") or {})
        ]
        return parse_document({"accounts": accounts}, self.name)

    def _list(
        self, client: httpx.Client, path: str, query: dict[str, str]
    ) -> Iterator[dict[str, Any]]:
        """Yield every object of a Stripe list endpoint, page by page."""
        after: str | None = None
        while True:
            params = {**query, "limit": str(_PAGE)} | ({"starting_after": after} if after else {})
            what = f"{self.name}: GET {path}"
            page = call_json(client, "GET", self.base + path, what, params=params)
            data = page.get("data")
            if not isinstance(data, list):
                raise BillingError(f"{what} answered without a data list")
            yield from (item for item in data if isinstance(item, dict))
            if not page.get("has_more") or not data:
                return
            after = str(data[-1].get("id"))

    def _account(self, customer: dict[str, Any], invoices: list[dict[str, Any]]) -> dict[str, Any]:
        """The nested-format account of one customer (validated by parse_document, which
        names any missing or malformed field)."""
        metadata = customer.get("metadata") or {}
        currencies = {str(i.get("currency", "")).lower() for i in invoices}
        currency = currencies.pop() if len(currencies) == 1 else None
        if currency is None and not currencies:
            currency = str(customer.get("currency") or "eur").lower()
        account: dict[str, Any] = {
            "account_id": customer.get("id"),
            "plan": metadata.get(self.config.plan_key, "default"),
            "contact": {
                "name": customer.get("name") or "",
                "email": customer.get("email"),
                "language": _language(customer.get("preferred_locales")),
            },
            "invoices": [_invoice(i) for i in invoices],
            "services": _services(metadata.get(self.config.services_key)),
        }
        if isinstance(customer.get("created"), int):
            account["created_at"] = _time(customer["created"])
        if currency is not None:  # several currencies: left out, so the row error names it
            account["currency"] = currency.upper()
            owed = sum((amount(i.get("amount_remaining"), currency) for i in invoices), Decimal(0))
            credit = _credit_balance(customer, currency)
            if credit:
                account["credits"] = [{"description": "Account credit", "amount": str(credit)}]
            account["balance"] = str(max(owed - credit, Decimal(0)))
        return account


def _language(preferred: object) -> str | None:
    """Return the first of a customer's `preferred_locales` ('de-DE', 'en') that is a
    language CLDR knows, or None (the brand's language) when none is."""
    if not isinstance(preferred, list):
        return None
    return next((tag for tag in preferred if usable_language(tag) is not None), None)


def _credit_balance(customer: dict[str, Any], currency: str) -> Decimal:
    """Return the credit the customer holds (Stripe's negative customer `balance`, which
    Stripe applies only to invoices finalized later, not to the open ones), in
    `currency`; 0 when there is none or it is kept in another currency."""
    balance = customer.get("balance")
    if str(customer.get("currency") or currency).lower() != currency.lower():
        return Decimal(0)
    if not isinstance(balance, int) or isinstance(balance, bool) or balance >= 0:
        return Decimal(0)
    return amount(-balance, currency)


def amount(minor_units: object, currency: str) -> Decimal:
    """Convert an amount in the currency's smallest unit (cents) to a Decimal.

    Raises nothing: a value that is not an integer becomes NaN, which validation
    then refuses with the field's name.
    """
    if not isinstance(minor_units, int) or isinstance(minor_units, bool):
        return Decimal("NaN")
    exponent = 0 if currency.lower() in ZERO_DECIMAL else 2
    return Decimal(minor_units).scaleb(-exponent)


def _invoice(invoice: dict[str, Any]) -> dict[str, Any]:
    currency = str(invoice.get("currency", ""))
    lines = (invoice.get("lines") or {}).get("data") or []
    due = invoice.get("due_date") or invoice.get("created")
    return {
        "id": invoice.get("number") or invoice.get("id"),
        "due_at": _time(due) if isinstance(due, int) else None,
        "total": str(amount(invoice.get("total"), currency)),
        "amount_due": str(amount(invoice.get("amount_remaining"), currency)),
        "items": [
            {
                "description": str(line.get("description") or ""),
                "amount": str(amount(line.get("amount"), currency)),
            }
            for line in lines
            if isinstance(line, dict)
        ],
    }


def _services(raw: object) -> object:
    """The services from metadata JSON; anything unreadable is passed on as is, so
    validation names the field."""
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _time(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()
