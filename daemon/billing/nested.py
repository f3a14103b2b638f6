"""The nested billing document (JSON file, HTTP endpoint) turned into snapshots.

A document is `{"accounts": [...]}` or a bare list of account objects. Each
account is checked on its own: a malformed one becomes a RowError and the
others are kept. Unknown keys are refused, so a misspelt "exempt" is reported
instead of silently reading as "not exempt".
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from daemon.billing import fields as f
from daemon.billing.base import BillingError
from daemon.billing.fields import FieldError
from daemon.billing.flat import paused_gc
from daemon.billing.minor_units import check_snapshot
from daemon.domain.snapshot import (
    AccountSnapshot,
    Contact,
    Credit,
    Database,
    Instalment,
    Invoice,
    LineItem,
    RowError,
    Service,
    SyncResult,
)

_ACCOUNT_KEYS = frozenset(
    {
        "account_id",
        "plan",
        "contact",
        "currency",
        "balance",
        "created_at",
        "exempt",
        "invoices",
        "services",
        "instalments",
        "credits",
    }
)
_CONTACT_KEYS = frozenset({"name", "email", "timezone", "language"})
_INVOICE_KEYS = frozenset({"id", "due_at", "total", "amount_due", "currency", "issued_at", "items"})
_ITEM_KEYS = frozenset({"description", "amount"})
_SERVICE_KEYS = frozenset({"host", "system_user", "docroot", "domains", "databases"})
_DATABASE_KEYS = frozenset({"engine", "name", "user"})
_INSTALMENT_KEYS = frozenset({"due_at", "amount", "paid"})
_CREDIT_KEYS = frozenset({"description", "amount", "kind"})
_CREDIT_KINDS = ("credit", "payment")


def parse_document(document: object, source: str) -> SyncResult:
    """Read a nested billing document (already decoded from JSON).

    Takes `{"accounts": [...]}` or a bare list, and `source` (file path or URL)
    for the errors. Returns the readable snapshots and one RowError per skipped
    account; every entry of a duplicated account id is skipped.
    Raises BillingError when the document as a whole has the wrong shape.
    """
    records = _account_list(document, source)
    duplicates = _duplicates(records)
    snapshots: list[AccountSnapshot] = []
    errors: list[RowError] = []
    with paused_gc():  # see flat.paused_gc: the collector would only slow this loop down
        for index, record in enumerate(records):
            try:
                positions = duplicates.get(_raw_id(record) or "")
                if positions:
                    where = ", ".join(f"#{i}" for i in positions)
                    message = f"the same account id is at {where}; every entry is skipped"
                    raise FieldError("account_id", message)
                snapshots.append(_account(record))
            except FieldError as error:
                label = _label(index, record)
                errors.append(RowError(source, label, error.field, error.message))
    return SyncResult(snapshots=tuple(snapshots), errors=tuple(errors))


def _account_list(document: object, source: str) -> list[Any]:
    """Return the list of account records; raises BillingError for any other shape."""
    if isinstance(document, Mapping):
        if "accounts" not in document:
            raise BillingError(
                f"{source}: expected a JSON object with an 'accounts' list (or a bare list), "
                f"got an object with keys {sorted(str(key) for key in document)[:10]}"
            )
        document = document["accounts"]
    if not isinstance(document, list):
        raise BillingError(
            f"{source}: expected a JSON object with an 'accounts' list (or a bare list), "
            f"got {_json_type(document)}"
        )
    return document


def _json_type(value: object) -> str:
    """Return the JSON name of `value`'s type, as an operator reading the document calls it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    return "a number" if isinstance(value, int | float | Decimal) else type(value).__name__


def _raw_id(record: object) -> str | None:
    """Return the record's account id as text, stripped; None when it is neither text nor int.

    Integers count because `fields.account_id` reads 7 as "7": 7 and "7" are the same account.
    """
    if isinstance(record, Mapping):
        value = record.get("account_id")
        if isinstance(value, str):
            return value.strip()
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
    return None


def _duplicates(records: list[Any]) -> dict[str, list[int]]:
    """Return each account id found in more than one record, with the records' indexes."""
    positions: dict[str, list[int]] = {}
    for index, record in enumerate(records):
        key = _raw_id(record)
        if key:
            positions.setdefault(key, []).append(index)
    return {key: where for key, where in positions.items() if len(where) > 1}


def _label(index: int, record: object) -> str:
    """Return '#3 (account acme)', or '#3' when the record has no readable account id."""
    key = _raw_id(record)
    try:
        return f"#{index} (account {f.account_id(key)})"
    except FieldError:
        return f"#{index}"


def _object(value: object, field: str, allowed: frozenset[str]) -> Mapping[str, Any]:
    """Return `value` when it is a JSON object with only `allowed` keys; raises FieldError."""
    if not isinstance(value, Mapping):
        raise FieldError(field or "(account)", f"expected an object, got {f.shown(value)}")
    unknown = sorted(str(key) for key in value.keys() - allowed)
    if unknown:
        where = f"{field}.{unknown[0]}" if field else unknown[0]
        raise FieldError(where, f"unknown key; expected one of {', '.join(sorted(allowed))}")
    return value


def _list(value: object, field: str) -> list[Any]:
    """Return a JSON list; a missing (None) value is empty. Raises FieldError otherwise."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise FieldError(field, f"expected a list, got {f.shown(value)}")
    return value


def _bool(value: object, field: str) -> bool:
    """Return a JSON true/false; a missing (None) value is false. Raises FieldError otherwise."""
    if value is None:
        return False
    if not isinstance(value, bool):
        raise FieldError(field, f"expected true or false, got {f.shown(value)}")
    return value


def _account(raw: object) -> AccountSnapshot:
    """Return the snapshot of one account record; raises FieldError on the first bad field."""
    record = _object(raw, "", _ACCOUNT_KEYS)
    account_id = f.account_id(record.get("account_id"))
    plan = f.text(record.get("plan"), "plan", f.PLAN_LIMIT)
    contact = _contact(record.get("contact"))
    currency = f.currency(record.get("currency"), "currency")
    invoices = tuple(
        _invoice(item, f"invoices[{i}]", currency)
        for i, item in enumerate(_list(record.get("invoices"), "invoices"))
    )
    credits = tuple(
        _credit(item, f"credits[{i}]")
        for i, item in enumerate(_list(record.get("credits"), "credits"))
    )
    snapshot = AccountSnapshot(
        account_id=account_id,
        plan=plan,
        contact=contact,
        balance=_balance(record.get("balance"), invoices, credits),
        currency=currency,
        invoices=invoices,
        services=tuple(
            _service(item, f"services[{i}]")
            for i, item in enumerate(_list(record.get("services"), "services"))
        ),
        created_at=f.optional_moment(record.get("created_at"), "created_at"),
        exempt=_bool(record.get("exempt"), "exempt"),
        instalments=tuple(
            _instalment(item, f"instalments[{i}]")
            for i, item in enumerate(_list(record.get("instalments"), "instalments"))
        ),
        credits=credits,
    )
    return check_snapshot(snapshot)


def _balance(value: object, invoices: tuple[Invoice, ...], credits: tuple[Credit, ...]) -> Decimal:
    """Return the stated balance, or what the open invoices still owe less the credits and
    unapplied payments (never below 0)."""
    if value is None:
        owed = sum((invoice.amount_due for invoice in invoices), Decimal(0))
        return max(owed - sum((credit.amount for credit in credits), Decimal(0)), Decimal(0))
    return f.money(value, "balance")


def _credit(raw: object, field: str) -> Credit:
    """Return one credit or unapplied payment (a positive amount). Raises FieldError."""
    item = _object(raw, field, _CREDIT_KEYS)
    kind = "credit" if item.get("kind") is None else f.text(item.get("kind"), f"{field}.kind")
    if kind not in _CREDIT_KINDS:
        raise FieldError(f"{field}.kind", f"expected 'credit' or 'payment', got {f.shown(kind)}")
    return Credit(
        description=f.text(item.get("description"), f"{field}.description"),
        amount=f.money(item.get("amount"), f"{field}.amount"),
        kind=kind,
    )


def _contact(raw: object) -> Contact:
    """Return the contact object; raises FieldError naming 'contact.<key>'."""
    contact = _object(raw, "contact", _CONTACT_KEYS)
    return Contact(
        name=f.text(contact.get("name"), "contact.name", f.NAME_LIMIT),
        email=f.email(contact.get("email"), "contact.email"),
        timezone=f.timezone(contact.get("timezone"), "contact.timezone"),
        language=f.language(contact.get("language"), "contact.language"),
    )


def _invoice(raw: object, field: str, account_currency: str) -> Invoice:
    """Return one invoice; its currency must be the account's. Raises FieldError."""
    invoice = _object(raw, field, _INVOICE_KEYS)
    invoice_id = f.text(invoice.get("id"), f"{field}.id", f.INVOICE_ID_LIMIT)
    due_at = f.moment(invoice.get("due_at"), f"{field}.due_at")
    total = f.money(invoice.get("total"), f"{field}.total")
    amount_due = invoice.get("amount_due")
    return Invoice(
        id=invoice_id,
        due_at=due_at,
        total=total,
        amount_due=total if amount_due is None else f.money(amount_due, f"{field}.amount_due"),
        currency=_invoice_currency(invoice.get("currency"), f"{field}.currency", account_currency),
        items=tuple(
            _item(item, f"{field}.items[{i}]")
            for i, item in enumerate(_list(invoice.get("items"), f"{field}.items"))
        ),
        issued_at=f.optional_moment(invoice.get("issued_at"), f"{field}.issued_at"),
    )


def _invoice_currency(value: object, field: str, account_currency: str) -> str:
    """Return the invoice's currency, which must be the account's; missing means the account's.

    Raises FieldError otherwise: the balance adds amounts up, and amounts in two
    currencies do not add up.
    """
    if value is None:
        return account_currency
    currency = f.currency(value, field)
    if currency != account_currency:
        raise FieldError(
            field, f"expected the account's currency {account_currency}, got {currency!r}"
        )
    return currency


def _item(raw: object, field: str) -> LineItem:
    """Return one invoice line; its amount may be negative (a discount). Raises FieldError."""
    item = _object(raw, field, _ITEM_KEYS)
    return LineItem(
        description=f.text(item.get("description"), f"{field}.description"),
        amount=f.money(item.get("amount"), f"{field}.amount", negative=True),
    )


def _service(raw: object, field: str) -> Service:
    """Return one hosting service with its domains and databases. Raises FieldError."""
    service = _object(raw, field, _SERVICE_KEYS)
    domains = _list(service.get("domains"), f"{field}.domains")
    databases = _list(service.get("databases"), f"{field}.databases")
    return Service(
        host=f.host(service.get("host"), f"{field}.host"),
        system_user=f.system_user(service.get("system_user"), f"{field}.system_user"),
        docroot=f.docroot(service.get("docroot"), f"{field}.docroot"),
        domains=tuple(f.domain(name, f"{field}.domains[{i}]") for i, name in enumerate(domains)),
        databases=tuple(
            _database(item, f"{field}.databases[{i}]") for i, item in enumerate(databases)
        ),
    )


def _database(raw: object, field: str) -> Database:
    """Return one database object ({"engine", "name", "user"}). Raises FieldError."""
    item = _object(raw, field, _DATABASE_KEYS)
    return f.database(item.get("engine"), item.get("name"), item.get("user"), field)


def _instalment(raw: object, field: str) -> Instalment:
    """Return one instalment of a payment plan. Raises FieldError."""
    item = _object(raw, field, _INSTALMENT_KEYS)
    return Instalment(
        due_at=f.moment(item.get("due_at"), f"{field}.due_at"),
        amount=f.money(item.get("amount"), f"{field}.amount"),
        paid=_bool(item.get("paid"), f"{field}.paid"),
    )
