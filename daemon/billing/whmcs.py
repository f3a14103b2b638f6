"""The `whmcs` billing source: clients, hosting services and unpaid invoices from WHMCS.

One Lapse account is one WHMCS client (`whmcs-<client id>`), because WHMCS
invoices a client, not a service: the account owes what the client's unpaid
invoices still owe, and its services are the client's active and suspended
hosting products, each on the Lapse host its WHMCS server maps to. WHMCS knows
no docroot and no databases: the docroot comes from a template over the
service's username, and databases are left to the playbooks. A product marked
"override auto-suspend" makes the account exempt. A client's `language` (the name of a
WHMCS language file, 'german', 'portuguese-br'; blank for the system default) becomes
the contact's language.

Four read-only API actions per sync, each paged: GetClients, GetClientsProducts,
GetInvoices (status Unpaid) and GetInvoice for each unpaid invoice's lines.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx

from daemon.billing.api import call_json
from daemon.billing.base import BillingError, BillingSource
from daemon.billing.parse import parse_document
from daemon.config.schema import WhmcsBilling
from daemon.config.secrets import SecretError
from daemon.domain.snapshot import SyncResult

# Product statuses whose site exists on a server (Pending, Terminated, Cancelled,
# Fraud and Completed have none to suspend or delete).
_LIVE_STATUSES = frozenset({"Active", "Suspended"})
_NO_DATE = ("", "0000-00-00")
# The language files WHMCS ships (lang/<name>.php), as the client's `language` names
# them, and the language each is; a name not listed here is passed on as it is, so a
# tag such as 'de-DE' still reads and anything else falls back to the brand's language.
WHMCS_LANGUAGES = {
    "arabic": "ar",
    "azerbaijani": "az",
    "catalan": "ca",
    "chinese": "zh",
    "croatian": "hr",
    "czech": "cs",
    "danish": "da",
    "dutch": "nl",
    "english": "en",
    "estonian": "et",
    "farsi": "fa",
    "french": "fr",
    "german": "de",
    "hebrew": "he",
    "hungarian": "hu",
    "italian": "it",
    "japanese": "ja",
    "macedonian": "mk",
    "norwegian": "nb",
    "polish": "pl",
    "portuguese-br": "pt_BR",
    "portuguese-pt": "pt_PT",
    "romanian": "ro",
    "russian": "ru",
    "spanish": "es",
    "swedish": "sv",
    "turkish": "tr",
    "ukranian": "uk",  # sic: WHMCS's file name
}


class WhmcsSource(BillingSource):
    """Reads WHMCS through its API on every sync; credentials are read at each sync."""

    def __init__(self, config: WhmcsBilling) -> None:
        self.config = config
        self.endpoint = config.url.rstrip("/") + "/includes/api.php"
        self.name = f"WHMCS at {config.url}"

    def fetch_all(self) -> SyncResult:
        """Read every client with a live hosting service or an unpaid invoice.

        Returns the snapshots and one RowError per client that could not be read.
        Raises BillingError when the API cannot be reached, refuses the
        credentials or answers in an unexpected shape.
        """
        try:
            credentials = {
                "identifier": self.config.identifier.reveal(),
                "secret": self.config.secret.reveal(),
            }
        except SecretError as error:
            raise BillingError(f"{self.name}: {error}") from None
        with httpx.Client(timeout=self.config.timeout.total_seconds()) as client:
            api = _Api(client, self.endpoint, credentials, self.config.page_size, self.name)
            clients = {str(c["id"]): c for c in api.pages("GetClients", "clients", "client")}
            products: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for product in api.pages("GetClientsProducts", "products", "product"):
                if product.get("status") in _LIVE_STATUSES:
                    products[str(product.get("clientid"))].append(product)
            unpaid: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for invoice in api.pages("GetInvoices", "invoices", "invoice", status="Unpaid"):
                detail = api.call("GetInvoice", invoiceid=invoice.get("id"))
                unpaid[str(invoice.get("userid"))].append(detail | {"_listed": invoice})
        wanted = sorted(set(products) | set(unpaid), key=_numeric)
        accounts = [self._account(i, clients.get(i), products[i], unpaid[i]) for i in wanted]
        return parse_document({"accounts": accounts}, self.name)

    def _account(
        self,
        client_id: str,
        client: dict[str, Any] | None,
        products: list[dict[str, Any]],
        invoices: list[dict[str, Any]],
    ) -> dict[str, Any]:
        """The nested-format account of one WHMCS client (validated by parse_document,
        which names any missing or malformed field)."""
        client = client or {}
        name = " ".join(
            part for part in (client.get("firstname"), client.get("lastname")) if part
        ) or str(client.get("companyname") or "")
        currencies = {str(i["_listed"].get("currencycode") or "") for i in invoices}
        account: dict[str, Any] = {
            "account_id": f"whmcs-{client_id}",
            "plan": self.config.plan,
            "contact": {
                "name": name,
                "email": client.get("email"),
                "language": _language(client.get("language")),
            },
            "balance": str(sum((_money(i.get("balance")) for i in invoices), Decimal(0))),
            "invoices": [_invoice(i) for i in invoices],
            "services": [self._service(p) for p in products],
            "exempt": any(str(p.get("overideautosuspend")) == "1" for p in products),
        }
        if client.get("datecreated") not in (None, *_NO_DATE):
            account["created_at"] = f"{client['datecreated']}T00:00:00+00:00"
        if len(currencies) == 1:
            account["currency"] = currencies.pop()
        elif not currencies:
            account["currency"] = str(client.get("currency_code") or "EUR")
        # Several currencies: left out, so the account is skipped with an error naming it.
        return account

    def _service(self, product: dict[str, Any]) -> dict[str, Any]:
        server = str(product.get("servername") or product.get("serverhostname") or "")
        username = str(product.get("username") or "")
        domain = str(product.get("domain") or "")
        return {
            "host": self.config.servers.get(server, server),
            "system_user": username,
            "docroot": self.config.docroot.format(username=username, domain=domain),
            "domains": [domain] if domain else [],
        }


def _language(value: object) -> object:
    """Return the language tag of a client's WHMCS `language` (the language file's name),
    or the value itself when it names no file WHMCS ships (parse_document then reads or
    refuses it like any language field)."""
    if isinstance(value, str):
        return WHMCS_LANGUAGES.get(value.strip().lower(), value)
    return value


class _Api:
    """The WHMCS API with credentials, paging and its result/message error convention."""

    def __init__(
        self,
        client: httpx.Client,
        endpoint: str,
        credentials: dict[str, str],
        page_size: int,
        name: str,
    ) -> None:
        self.client = client
        self.endpoint = endpoint
        self.credentials = credentials
        self.page_size = page_size
        self.name = name

    def call(self, action: str, **parameters: Any) -> dict[str, Any]:
        """Run one API action; return its answer. Raises BillingError naming the action."""
        what = f"{self.name}: {action}"
        form = {**self.credentials, "action": action, "responsetype": "json", **parameters}
        body = call_json(self.client, "POST", self.endpoint, what, data=form)
        if body.get("result") != "success":
            raise BillingError(f"{what} failed: {body.get('message') or 'no message'}")
        return body

    def pages(
        self, action: str, outer: str, inner: str, **parameters: Any
    ) -> Iterator[dict[str, Any]]:
        """Yield every record of a paged list action (`outer`.`inner` holds a page)."""
        start = 0
        while True:
            body = self.call(action, limitstart=start, limitnum=self.page_size, **parameters)
            container = body.get(outer)
            # WHMCS answers an empty list as "" or {} rather than an empty array.
            records = container.get(inner, []) if isinstance(container, dict) else []
            if not isinstance(records, list):
                raise BillingError(f"{self.name}: {action} answered {outer} in an unknown shape")
            yield from (r for r in records if isinstance(r, dict))
            start += len(records)
            if not records or start >= int(body.get("totalresults", 0)):
                return


def _invoice(detail: dict[str, Any]) -> dict[str, Any]:
    listed = detail["_listed"]
    items = detail.get("items")
    lines = items.get("item", []) if isinstance(items, dict) else []
    due = detail.get("duedate") or listed.get("duedate")
    return {
        "id": str(detail.get("invoicenum") or detail.get("invoiceid") or listed.get("id")),
        "due_at": f"{due}T00:00:00+00:00" if due not in (None, *_NO_DATE) else None,
        "total": str(detail.get("total")),
        "amount_due": str(detail.get("balance")),
        "items": [
            {"description": str(line.get("description", "")), "amount": str(line.get("amount"))}
            for line in lines
            if isinstance(line, dict)
        ],
    }


def _money(value: object) -> Decimal:
    try:
        return Decimal(str(value))
    except ArithmeticError:
        return Decimal(0)  # the invoice's own amount_due then fails validation, named


def _numeric(client_id: str) -> tuple[int, str]:
    return (int(client_id), "") if client_id.isdigit() else (0, client_id)
