"""Each billing source with the system it reads: a file, a database, a JSON endpoint, or
the WHMCS and Stripe APIs emulated on loopback.

A lab takes the accounts a test wants listed (as the snapshots the source should make
of them), puts them where its source reads them in that system's own format, and
builds the source the way the daemon does (`create_source`). WHMCS and Stripe cannot
run here: their API answers are made from the accounts, in the shapes of the answers
recorded under tests/unit/billing/recorded/, and served by the same loopback server
that replays those recordings (tests/unit/billing/replay.py).
"""

from __future__ import annotations

import json
import secrets
from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import create_engine, text

from daemon.billing.base import BillingSource
from daemon.billing.dispatch import create_source
from daemon.billing.flat import FLAT_COLUMNS
from daemon.billing.stripe import ZERO_DECIMAL
from daemon.billing.whmcs import WHMCS_LANGUAGES
from daemon.config.schema import (
    FileBilling,
    HttpBilling,
    SqlBilling,
    StripeBilling,
    WhmcsBilling,
)
from daemon.domain.snapshot import AccountSnapshot, Invoice
from tests.contracts.kit import Kit
from tests.unit.billing.helpers import write_csv
from tests.unit.billing.replay import replay

# Nothing listens on port 1 of loopback: a connection there is refused at once.
UNREACHABLE = "127.0.0.1:1"


class BillingLab(ABC):
    """A billing source and the system it reads, filled by the test."""

    # The name a malformed contact e-mail address is reported under.
    email_field = "contact.email"

    @abstractmethod
    def publish(self, accounts: Sequence[AccountSnapshot]) -> None:
        """Make the system list exactly `accounts` (each under `account_id(...)` of its id),
        replacing what it listed before."""

    @abstractmethod
    def source(self) -> BillingSource:
        """Return a source reading the system, built from its config section."""

    @abstractmethod
    def unreachable(self) -> BillingSource:
        """Return a source of the same kind whose system cannot be reached."""

    @abstractmethod
    def row_of(self, accounts: Sequence[AccountSnapshot], account_id: str) -> str:
        """Return how a RowError names the row of account `account_id` when `accounts`
        are published."""

    def account_id(self, key: str) -> str:
        """Return the id the source gives the account published with id `key` (a number):
        the same, unless the system names accounts its own way."""
        return key


def language_tag(account: AccountSnapshot) -> str:
    """The contact's language as billing systems write a tag: BCP 47 ('pt-BR'), '' for none."""
    return (account.contact.language or "").replace("_", "-")


def _day(moment: datetime) -> str:
    """The date of a midnight-UTC moment, as billing systems without times write it."""
    return moment.date().isoformat()


# --- the nested document: JSON file and HTTP endpoint ----------------------------------


def nested_document(accounts: Sequence[AccountSnapshot]) -> dict[str, Any]:
    """Return the nested billing document (docs/billing.md) listing `accounts`."""
    return {"accounts": [_nested_account(account) for account in accounts]}


def _nested_account(account: AccountSnapshot) -> dict[str, Any]:
    return {
        "account_id": account.account_id,
        "plan": account.plan,
        "contact": {
            "name": account.contact.name,
            "email": account.contact.email,
            "language": language_tag(account) or None,
        },
        "currency": account.currency,
        "created_at": account.created_at.isoformat() if account.created_at else None,
        "invoices": [
            {
                "id": invoice.id,
                "due_at": invoice.due_at.isoformat(),
                "total": str(invoice.total),
                "amount_due": str(invoice.amount_due),
                "items": [
                    {"description": item.description, "amount": str(item.amount)}
                    for item in invoice.items
                ],
            }
            for invoice in account.invoices
        ],
        "services": [
            {
                "host": service.host,
                "system_user": service.system_user,
                "docroot": service.docroot,
                "domains": list(service.domains),
            }
            for service in account.services
        ],
    }


def _nested_row(ids: Sequence[str], account_id: str) -> str:
    """How the nested parser names the entry of `account_id` in a list of entries `ids`."""
    return f"#{ids.index(account_id)} (account {account_id})"


class FileJsonLab(BillingLab):
    """The file source reading a JSON document."""

    def __init__(self, kit: Kit) -> None:
        self.path = kit.tmp_path / "billing.json"

    def publish(self, accounts: Sequence[AccountSnapshot]) -> None:
        self.path.write_text(json.dumps(nested_document(accounts)), encoding="utf-8")

    def source(self) -> BillingSource:
        return create_source(FileBilling(type="file", path=self.path))

    def unreachable(self) -> BillingSource:
        return create_source(FileBilling(type="file", path=self.path.with_name("gone.json")))

    def row_of(self, accounts: Sequence[AccountSnapshot], account_id: str) -> str:
        return _nested_row([account.account_id for account in accounts], account_id)


class HttpLab(BillingLab):
    """The http source GETting the document from a server on loopback, with a bearer token."""

    TOKEN = "contract-token-0815"

    def __init__(self, kit: Kit) -> None:
        self.document: dict[str, Any] = {"accounts": []}
        self.token_file = kit.tmp_path / "token"
        self.token_file.write_text(self.TOKEN)
        self.base, _seen = kit.enter(replay(self._answer))

    def _answer(
        self, method: str, path: str, fields: dict[str, str], headers: dict[str, str]
    ) -> tuple[int, Any]:
        if headers.get("Authorization") != f"Bearer {self.TOKEN}":
            return 401, {"message": "unauthorized"}
        if method != "GET" or path != "/lapse/accounts":
            return 404, {"message": "not found"}
        return 200, self.document

    def publish(self, accounts: Sequence[AccountSnapshot]) -> None:
        self.document = nested_document(accounts)

    def _source(self, base: str) -> BillingSource:
        auth = {"type": "bearer", "token": {"file": str(self.token_file)}}
        config = {"type": "http", "url": f"{base}/lapse/accounts", "auth": auth, "timeout": "5s"}
        return create_source(HttpBilling.model_validate(config))

    def source(self) -> BillingSource:
        return self._source(self.base)

    def unreachable(self) -> BillingSource:
        return self._source(f"http://{UNREACHABLE}")

    def row_of(self, accounts: Sequence[AccountSnapshot], account_id: str) -> str:
        return _nested_row([account.account_id for account in accounts], account_id)


# --- flat rows: CSV file and SQL query -------------------------------------------------


def flat_rows(account: AccountSnapshot) -> list[dict[str, str]]:
    """Return the flat rows (docs/billing.md) of `account`: one per invoice line, one
    for an invoice without lines, one with the invoice columns blank when none is open."""
    (service,) = account.services  # flat rows carry one service per account
    head = {
        "account_id": account.account_id,
        "plan": account.plan,
        "contact_name": account.contact.name,
        "contact_email": account.contact.email,
        "contact_timezone": "",
        "contact_language": language_tag(account),
        "currency": account.currency,
        "created_at": account.created_at.isoformat() if account.created_at else "",
        "exempt": "false",
        "host": service.host,
        "system_user": service.system_user,
        "docroot": service.docroot,
        "domains": " ".join(service.domains),
        "databases": "",
    }
    no_item = {"item_description": "", "item_amount": ""}
    rows = []
    for invoice in account.invoices:
        columns = head | _invoice_columns(invoice)
        lines = [
            {"item_description": item.description, "item_amount": str(item.amount)}
            for item in invoice.items
        ]
        rows += [columns | line for line in lines or [no_item]]
    blank = {"invoice_id": "", "invoice_due_at": "", "invoice_total": "", "invoice_amount_due": ""}
    return rows or [head | blank | no_item]


def _invoice_columns(invoice: Invoice) -> dict[str, str]:
    return {
        "invoice_id": invoice.id,
        "invoice_due_at": invoice.due_at.isoformat(),
        "invoice_total": str(invoice.total),
        "invoice_amount_due": str(invoice.amount_due),
    }


def _first_row(accounts: Sequence[AccountSnapshot], account_id: str) -> int:
    """The number (from 1) of the first flat row of `account_id` among all accounts' rows."""
    number = 1
    for account in accounts:
        if account.account_id == account_id:
            return number
        number += len(flat_rows(account))
    raise KeyError(account_id)


class FileCsvLab(BillingLab):
    """The file source reading a CSV table."""

    email_field = "contact_email"

    def __init__(self, kit: Kit) -> None:
        self.path = kit.tmp_path / "billing.csv"

    def publish(self, accounts: Sequence[AccountSnapshot]) -> None:
        rows = [row for account in accounts for row in flat_rows(account)]
        write_csv(self.path, rows, (*FLAT_COLUMNS, "contact_language"))

    def source(self) -> BillingSource:
        return create_source(FileBilling(type="file", path=self.path))

    def unreachable(self) -> BillingSource:
        return create_source(FileBilling(type="file", path=self.path.with_name("gone.csv")))

    def row_of(self, accounts: Sequence[AccountSnapshot], account_id: str) -> str:
        return f"line {_first_row(accounts, account_id) + 1}"  # line 1 is the header


class SqlLab(BillingLab):
    """The sql source running a query over a table of flat rows in a database."""

    email_field = "contact_email"
    QUERY = "SELECT * FROM billing_lines ORDER BY line"

    def __init__(self, url: str, unreachable_url: str) -> None:
        self.url = url
        self.unreachable_url = unreachable_url
        self._made: list[BillingSource] = []

    def publish(self, accounts: Sequence[AccountSnapshot]) -> None:
        rows = [row for account in accounts for row in flat_rows(account)]
        names = (*FLAT_COLUMNS, "contact_language")
        columns = ", ".join(f"{name} VARCHAR(200)" for name in names)
        placeholders = ", ".join(f":{name}" for name in ("line", *names))
        engine = create_engine(self.url)
        with engine.begin() as connection:
            connection.execute(text("DROP TABLE IF EXISTS billing_lines"))
            connection.execute(text(f"CREATE TABLE billing_lines (line INTEGER, {columns})"))
            if rows:
                numbered = [row | {"line": number} for number, row in enumerate(rows, start=1)]
                insert = f"INSERT INTO billing_lines VALUES ({placeholders})"
                connection.execute(text(insert), numbered)
        engine.dispose()

    def _source(self, url: str) -> BillingSource:
        source = create_source(SqlBilling(type="sql", url=url, query=self.QUERY))
        self._made.append(source)
        return source

    def source(self) -> BillingSource:
        return self._source(self.url)

    def unreachable(self) -> BillingSource:
        return self._source(self.unreachable_url)

    def row_of(self, accounts: Sequence[AccountSnapshot], account_id: str) -> str:
        return f"row {_first_row(accounts, account_id)}"

    def close(self) -> None:
        """Close the pools of the sources made (a PostgreSQL database keeps no idle logins)."""
        for source in self._made:
            source.close()


def sqlite_lab(kit: Kit) -> SqlLab:
    """The sql source over a SQLite file."""
    missing = kit.tmp_path / "no-such-directory" / "billing.db"
    lab = SqlLab(f"sqlite:///{kit.tmp_path / 'billing.db'}", f"sqlite:///{missing}")
    kit.later(lab.close)
    return lab


def postgresql_lab(kit: Kit) -> SqlLab:
    """The sql source over a database of the lab's PostgreSQL."""
    url = kit.service("postgres").create_database(f"billing_{secrets.token_hex(4)}")
    lab = SqlLab(url, f"postgresql+psycopg://lapse@{UNREACHABLE}/billing")
    kit.later(lab.close)
    return lab


# --- WHMCS's API -----------------------------------------------------------------------


# A language tag to the WHMCS language file that is that language ('pt-BR': 'portuguese-br').
_WHMCS_NAMES = {tag.replace("_", "-"): name for name, tag in WHMCS_LANGUAGES.items()}


class WhmcsLab(BillingLab):
    """The whmcs source against an emulated WHMCS API (includes/api.php, form posts,
    credentials in the form, result/message, paged lists), two records a page."""

    IDENTIFIER, SECRET = "contract-id", "contract-secret"

    def __init__(self, kit: Kit) -> None:
        self.answers: dict[str, Any] = {}
        self.tmp_path = kit.tmp_path
        (kit.tmp_path / "whmcs-id").write_text(self.IDENTIFIER)
        (kit.tmp_path / "whmcs-secret").write_text(self.SECRET)
        self.base, _seen = kit.enter(replay(self._answer))

    def account_id(self, key: str) -> str:
        return f"whmcs-{key}"

    def publish(self, accounts: Sequence[AccountSnapshot]) -> None:
        clients: list[dict[str, Any]] = []
        products: list[dict[str, Any]] = []
        listed: list[dict[str, Any]] = []
        details: dict[str, dict[str, Any]] = {}
        for account in accounts:
            client_id = int(account.account_id)
            first, _, last = account.contact.name.partition(" ")
            clients.append(
                {
                    "id": client_id,
                    "firstname": first,
                    "lastname": last,
                    "companyname": "",
                    "email": account.contact.email,
                    "datecreated": _day(account.created_at) if account.created_at else "",
                    "currency_code": account.currency,
                    "status": "Active",
                    # WHMCS names a client's language by its language file ('german').
                    "language": _WHMCS_NAMES.get(language_tag(account), language_tag(account)),
                }
            )
            for service in account.services:
                (domain,) = service.domains  # WHMCS: one domain per hosting product
                products.append(
                    {
                        "id": len(products) + 1,
                        "clientid": client_id,
                        "servername": service.host,
                        "domain": domain,
                        "username": service.system_user,
                        "status": "Active",
                        "overideautosuspend": 0,
                    }
                )
            for invoice in account.invoices:
                number = str(5000 + len(listed))
                listed.append(
                    {
                        "id": number,
                        "userid": client_id,
                        "currencycode": account.currency,
                        "duedate": _day(invoice.due_at),
                    }
                )
                details[number] = {
                    "result": "success",
                    "invoiceid": number,
                    "invoicenum": invoice.id,
                    "duedate": _day(invoice.due_at),
                    "total": str(invoice.total),
                    "balance": str(invoice.amount_due),
                    "items": {
                        "item": [
                            {"description": item.description, "amount": str(item.amount)}
                            for item in invoice.items
                        ]
                    },
                }
        self.answers = {
            "GetClients": ("clients", "client", clients),
            "GetClientsProducts": ("products", "product", products),
            "GetInvoices": ("invoices", "invoice", listed),
            "GetInvoice": details,
        }

    def _answer(
        self, method: str, path: str, form: dict[str, str], headers: dict[str, str]
    ) -> tuple[int, Any]:
        if method != "POST" or path != "/includes/api.php":
            return 404, {"result": "error", "message": "not found"}
        if (form.get("identifier"), form.get("secret")) != (self.IDENTIFIER, self.SECRET):
            return 403, {"result": "error", "message": "Authentication Failed"}
        action = form.get("action", "")
        if action == "GetInvoice":
            detail = self.answers["GetInvoice"].get(form.get("invoiceid", ""))
            return 200, detail or {"result": "error", "message": "Invoice ID Not Found"}
        if action not in self.answers or (action == "GetInvoices" and form["status"] != "Unpaid"):
            return 200, {"result": "error", "message": f"Command Not Found: {action}"}
        outer, inner, records = self.answers[action]
        start, size = int(form["limitstart"]), int(form["limitnum"])
        page = records[start : start + size]
        return 200, {
            "result": "success",
            "totalresults": len(records),
            "startnumber": start,
            "numreturned": len(page),
            # WHMCS answers an empty list as "" rather than an empty array.
            outer: {inner: page} if page else "",
        }

    def _source(self, base: str) -> BillingSource:
        config = {
            "type": "whmcs",
            "url": base,
            "identifier": {"file": str(self.tmp_path / "whmcs-id")},
            "secret": {"file": str(self.tmp_path / "whmcs-secret")},
            "docroot": "/srv/www/{username}",
            "page_size": 2,
            "timeout": "5s",
        }
        return create_source(WhmcsBilling.model_validate(config))

    def source(self) -> BillingSource:
        return self._source(self.base)

    def unreachable(self) -> BillingSource:
        return self._source(f"http://{UNREACHABLE}")

    def row_of(self, accounts: Sequence[AccountSnapshot], account_id: str) -> str:
        # Clients are read in the order of their ids, as numbers.
        ids = sorted(int(account.account_id) for account in accounts)
        return f"#{ids.index(int(account_id))} (account {self.account_id(account_id)})"


# --- Stripe's API ----------------------------------------------------------------------


def _minor_units(amount: Decimal, currency: str) -> int:
    exponent = 0 if currency.lower() in ZERO_DECIMAL else 2
    return int(amount.scaleb(exponent))


def _seconds(moment: datetime) -> int:
    return int(moment.timestamp())


class StripeLab(BillingLab):
    """The stripe source against an emulated Stripe API (bearer key, list objects paged
    by starting_after, amounts in minor units, services in customer metadata)."""

    KEY = "rk_test_contract_4242"

    def __init__(self, kit: Kit) -> None:
        self.customers: list[dict[str, Any]] = []
        self.invoices: list[dict[str, Any]] = []
        self.key_file = kit.tmp_path / "stripe-key"
        self.key_file.write_text(self.KEY)
        self.base, _seen = kit.enter(replay(self._answer))

    def account_id(self, key: str) -> str:
        return f"cus_{key}"

    def publish(self, accounts: Sequence[AccountSnapshot]) -> None:
        self.customers, self.invoices = [], []
        for account in accounts:
            customer_id = self.account_id(account.account_id)
            services = [
                {
                    "host": service.host,
                    "system_user": service.system_user,
                    "docroot": service.docroot,
                    "domains": list(service.domains),
                }
                for service in account.services
            ]
            self.customers.append(
                {
                    "id": customer_id,
                    "object": "customer",
                    "name": account.contact.name,
                    "email": account.contact.email,
                    "created": _seconds(account.created_at) if account.created_at else None,
                    "currency": account.currency.lower(),
                    "balance": 0,
                    "preferred_locales": [language_tag(account)] if language_tag(account) else [],
                    "metadata": {
                        "lapse_services": json.dumps(services),
                        "lapse_plan": account.plan,
                    },
                }
            )
            self.invoices += [self._invoice(customer_id, invoice) for invoice in account.invoices]

    def _invoice(self, customer_id: str, invoice: Invoice) -> dict[str, Any]:
        currency = invoice.currency
        return {
            "id": f"in_{invoice.id}",
            "object": "invoice",
            "number": invoice.id,
            "customer": customer_id,
            "status": "open",
            "currency": currency.lower(),
            "due_date": _seconds(invoice.due_at),
            "total": _minor_units(invoice.total, currency),
            "amount_remaining": _minor_units(invoice.amount_due, currency),
            "lines": {
                "object": "list",
                "data": [
                    {"description": item.description, "amount": _minor_units(item.amount, currency)}
                    for item in invoice.items
                ],
            },
        }

    def _answer(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str]
    ) -> tuple[int, Any]:
        if headers.get("Authorization") != f"Bearer {self.KEY}":
            error = {"type": "invalid_request_error", "message": "Invalid API Key provided"}
            return 401, {"error": error}
        if method == "GET" and path == "/v1/customers":
            return 200, _page(self.customers, query, "/v1/customers")
        if method == "GET" and path == "/v1/invoices" and query.get("status") == "open":
            return 200, _page(self.invoices, query, "/v1/invoices")
        error = {"type": "invalid_request_error", "message": f"Unrecognized request URL {path}"}
        return 404, {"error": error}

    def _source(self, base: str) -> BillingSource:
        config = {
            "type": "stripe",
            "api_key": {"file": str(self.key_file)},
            "url": base,
            "timeout": "5s",
        }
        return create_source(StripeBilling.model_validate(config))

    def source(self) -> BillingSource:
        return self._source(self.base)

    def unreachable(self) -> BillingSource:
        return self._source(f"http://{UNREACHABLE}")

    def row_of(self, accounts: Sequence[AccountSnapshot], account_id: str) -> str:
        return _nested_row(
            [self.account_id(account.account_id) for account in accounts],
            self.account_id(account_id),
        )


def _page(records: list[dict[str, Any]], query: dict[str, str], url: str) -> dict[str, Any]:
    """A Stripe list object: `limit` records after the id `starting_after`, and whether
    more follow. Two a page here, whatever the limit asked, so paging is exercised."""
    after = query.get("starting_after")
    start = [record["id"] for record in records].index(after) + 1 if after else 0
    page = records[start : start + 2]
    return {"object": "list", "url": url, "data": page, "has_more": start + 2 < len(records)}
