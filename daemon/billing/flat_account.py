"""One account's flat rows turned into a snapshot.

The account and service columns are read from the account's first row and
must repeat unchanged on every other row; the invoice columns must repeat
unchanged on every row of the same invoice_id. A row that disagrees is
malformed. Flat rows carry one service per account and no instalments.

Rows are compared as raw tuples and line items are cached by their raw cells,
so a row that only repeats known values costs a few dictionary look-ups.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import NamedTuple

from daemon.billing import fields as f
from daemon.billing.fields import FieldError
from daemon.billing.minor_units import whole_minor_units
from daemon.domain.errors import LapseError
from daemon.domain.snapshot import (
    AccountSnapshot,
    Contact,
    Credit,
    Database,
    Invoice,
    LineItem,
    Service,
)

# The flat columns, in the order flat.py cuts them out of a row.
ACCOUNT_COLUMNS = (
    "account_id",
    "plan",
    "contact_name",
    "contact_email",
    "contact_timezone",
    "currency",
    "created_at",
    "exempt",
    "host",
    "system_user",
    "docroot",
    "domains",
    "databases",
)
# Optional account-level columns: money the client has that no open invoice shows (an
# account credit, payments received but not yet applied). Blank or absent means none.
CREDIT_COLUMNS = ("credit", "unapplied_payments")
# The client's language ('de', 'pt-BR'); blank or absent means the brand's.
LANGUAGE_COLUMN = "contact_language"
# Every optional account-level column, in the order they are cut out after ACCOUNT_COLUMNS.
OPTIONAL_COLUMNS = (LANGUAGE_COLUMN, *CREDIT_COLUMNS)
_CREDIT_TEXT = {
    "credit": ("Account credit", "credit"),
    "unapplied_payments": ("Payments received, not yet applied", "payment"),
}
INVOICE_COLUMNS = ("invoice_id", "invoice_due_at", "invoice_total", "invoice_amount_due")
ITEM_COLUMNS = ("item_description", "item_amount")

Row = tuple[object, ...]
# (row number, account and service cells, invoice cells, line item cells)
Line = tuple[int, Row, Row, Row]


class BadRowError(LapseError):
    """A FieldError tied to the number of the row it was found in."""

    def __init__(self, number: int, error: FieldError) -> None:
        super().__init__(str(error))
        self.number = number
        self.error = error


class _Head(NamedTuple):
    """The account-level values of a flat account, read from its first row."""

    account_id: str
    plan: str
    contact: Contact
    currency: str
    created_at: datetime | None
    exempt: bool
    services: tuple[Service, ...]


class _Open:
    """An invoice being assembled from its rows; `id` is None for rows that name no invoice."""

    __slots__ = ("amount_due", "cells", "due_at", "id", "items", "number", "total")

    def __init__(self, number: int, cells: Row) -> None:
        self.number = number
        self.cells = cells
        self.id: str | None = None
        self.due_at = _EPOCH
        self.total = self.amount_due = Decimal(0)
        self.items: list[LineItem] = []


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # placeholder until due_at is read
_ZERO = Decimal(0)  # the balance of every account with no open invoice, shared
_NO_ITEM = LineItem(description="", amount=Decimal(0))  # cache marker for blank item cells


class AccountReader:
    """Reads accounts from their grouped flat rows, sharing caches across one sync."""

    def __init__(self, unit: str, optional_columns: tuple[str, ...] = ()) -> None:
        self.unit = unit
        # The OPTIONAL_COLUMNS the table has, in that order, cut out after the account columns.
        self.optional_columns = optional_columns
        # The language column comes first among them, the credit columns after it.
        self.has_language = LANGUAGE_COLUMN in optional_columns
        self.credit_columns = optional_columns[1:] if self.has_language else optional_columns
        self.account_names = ACCOUNT_COLUMNS + optional_columns
        # LineItems are immutable, so identical lines ("Hosting, 9.99") share one object.
        self.items: dict[Row, LineItem] = {}
        # Values most accounts repeat (plan, time zone, currency, host) as one string
        # each, not one per account: a sync keeps 100,000 snapshots in memory.
        self.words: dict[str, str] = {}

    def read(self, group: list[Line]) -> AccountSnapshot:
        """Return the snapshot of one account's rows.

        Raises BadRowError at the first malformed row (the account must be skipped).
        """
        number, head, _invoice, _item = group[0]
        try:
            width = len(ACCOUNT_COLUMNS)
            language, credit_cells = (
                (head[width], head[width + 1 :]) if self.has_language else (None, head[width:])
            )
            account = _head(head[:width], self.words, language)
            credits = _credits(self.credit_columns, credit_cells, account.currency)
            opened: dict[Row, _Open] = {}
            for number, cells, invoice_cells, item_cells in group:  # error location
                if cells != head:
                    raise _disagreement(self.account_names, head, cells, self._where(group[0][0]))
                entry = opened.get(invoice_cells)
                if entry is None:
                    entry = opened[invoice_cells] = self._open(number, invoice_cells, opened)
                self._add_item(entry, item_cells)
                _whole_units(entry, account.currency)
        except FieldError as error:
            raise BadRowError(number, error) from None
        return _snapshot(account, opened, credits)

    def _where(self, number: int) -> str:
        return f"{self.unit} {number}"

    def _open(self, number: int, cells: Row, opened: dict[Row, _Open]) -> _Open:
        """Start an invoice from its first row; a blank invoice_id starts the 'no invoice' entry.

        Raises FieldError for a bad value, or when the same invoice_id came with other values.
        """
        entry = _Open(number, cells)
        raw_id, due_at, total, amount_due = cells
        if raw_id is None or raw_id == "":
            for name, value in zip(INVOICE_COLUMNS[1:], cells[1:], strict=True):
                if not f.is_blank(value):
                    message = f"expected nothing without an invoice_id, got {f.shown(value)}"
                    raise FieldError(name, message)
            return entry
        entry.id = f.text(raw_id, "invoice_id", f.INVOICE_ID_LIMIT)
        for other in opened.values():
            if other.id == entry.id:
                where = f"{self._where(other.number)} for invoice {entry.id}"
                raise _disagreement(INVOICE_COLUMNS, other.cells, cells, where)
        entry.due_at = f.moment(due_at, "invoice_due_at")
        entry.total = entry.amount_due = f.money(total, "invoice_total")
        if not f.is_blank(amount_due):
            entry.amount_due = f.money(amount_due, "invoice_amount_due")
        return entry

    def _add_item(self, entry: _Open, cells: Row) -> None:
        """Add a row's line item to its invoice; blank item cells add nothing. Raises FieldError."""
        item = self.items.get(cells)
        if item is None:
            item = _item(cells)
            if type(cells[1]) is str:  # Decimal('1') == Decimal('1.00'): cache text only
                self.items[cells] = item
        if item is _NO_ITEM:
            return
        if entry.id is None:
            raise FieldError("item_description", "expected nothing without an invoice_id")
        entry.items.append(item)


def _whole_units(entry: _Open, currency: str) -> None:
    """Refuse the row just read when an amount of its invoice or item is finer than the
    currency's minor unit. Raises FieldError naming the column."""
    whole_minor_units(entry.total, currency, "invoice_total")
    whole_minor_units(entry.amount_due, currency, "invoice_amount_due")
    if entry.items:
        whole_minor_units(entry.items[-1].amount, currency, "item_amount")


def _item(cells: Row) -> LineItem:
    """Return the line item of a row's (description, amount), or _NO_ITEM when both are blank.

    The amount may be negative (a discount). Raises FieldError.
    """
    description, amount = cells
    if f.is_blank(description) and f.is_blank(amount):
        return _NO_ITEM
    return LineItem(
        description=f.text(description, "item_description"),
        amount=f.money(amount, "item_amount", negative=True),
    )


def _disagreement(names: tuple[str, ...], first: Row, other: Row, where: str) -> FieldError:
    """Return the error for cells that differ from the ones first seen at `where`."""
    for name, expected, got in zip(names, first, other, strict=True):
        if expected != got:
            message = (
                f"expected the same value as on {where} ({f.shown(expected)}), got {f.shown(got)}"
            )
            return FieldError(name, message)
    raise AssertionError("the cells differ but no single cell does")  # pragma: no cover


def _credits(names: tuple[str, ...], cells: Row, currency: str) -> tuple[Credit, ...]:
    """Return the credits the optional credit cells state (blank or 0: none).

    Raises FieldError for an amount that is not one, negative or finer than the
    currency's minor unit.
    """
    credits = []
    for name, cell in zip(names, cells, strict=True):
        if f.is_blank(cell):
            continue
        amount = whole_minor_units(f.money(cell, name), currency, name)
        if amount:
            description, kind = _CREDIT_TEXT[name]
            credits.append(Credit(description, amount, kind))
    return tuple(credits)


def _snapshot(
    account: _Head, opened: dict[Row, _Open], credits: tuple[Credit, ...]
) -> AccountSnapshot:
    """Return the finished snapshot: the head's values plus the assembled invoices, the
    balance being what they still owe less the credits (never below 0)."""
    invoices = tuple(
        Invoice(
            id=entry.id,
            due_at=entry.due_at,
            total=entry.total,
            amount_due=entry.amount_due,
            currency=account.currency,
            items=tuple(entry.items),
        )
        for entry in opened.values()
        if entry.id is not None
    )
    return AccountSnapshot(
        account_id=account.account_id,
        plan=account.plan,
        contact=account.contact,
        balance=_balance(invoices, credits),
        currency=account.currency,
        invoices=invoices,
        services=account.services,
        created_at=account.created_at,
        exempt=account.exempt,
        credits=credits,
    )


def _balance(invoices: tuple[Invoice, ...], credits: tuple[Credit, ...]) -> Decimal:
    """Return what the invoices still owe less the credits, never below 0."""
    owed = sum((invoice.amount_due for invoice in invoices), _ZERO) if invoices else _ZERO
    if not credits:
        return owed
    return max(owed - sum((credit.amount for credit in credits), _ZERO), _ZERO)


def _head(cells: Row, words: dict[str, str], language: object = None) -> _Head:
    """Return the account-level values from an account's cells and its contact_language
    cell (None when the table has no such column).

    `words` maps each repeated value to the one string all accounts share.
    Raises FieldError.
    """
    (raw_id, plan, name, mail, zone, currency, created, exempt, *service) = cells
    account_id = f.account_id(raw_id)
    return _Head(
        account_id=account_id,
        plan=_shared(words, f.text(plan, "plan", f.PLAN_LIMIT)),
        contact=Contact(
            name=f.text(name, "contact_name", f.NAME_LIMIT),
            email=f.email(mail, "contact_email"),
            timezone=_shared(words, f.timezone(zone, "contact_timezone")),
            language=_shared_or_none(words, f.language(language, LANGUAGE_COLUMN)),
        ),
        currency=_shared(words, f.currency(currency, "currency")),
        created_at=f.optional_moment(created, "created_at"),
        exempt=f.flag(exempt, "exempt"),
        services=_services(account_id, words, *service),
    )


def _shared(words: dict[str, str], value: str) -> str:
    """Return the string equal to `value` that `words` already holds, adding it if new."""
    return words.setdefault(value, value)


def _shared_or_none(words: dict[str, str], value: str | None) -> str | None:
    """Return `_shared(words, value)`, or None for None."""
    return None if value is None else _shared(words, value)


def _services(
    account_id: str,
    words: dict[str, str],
    host: object,
    user: object,
    docroot: object,
    domains: object,
    databases: object,
) -> tuple[Service, ...]:
    """Return the account's one service, or none when every service cell is blank.

    Names that repeat the account id (the usual system user and database names)
    share its string. Raises FieldError naming the column at fault.
    """
    if not (host or user or docroot or domains or databases):
        return ()
    system_user = f.system_user(user, "system_user")
    service = Service(
        host=_shared(words, f.host(host, "host")),
        system_user=account_id if system_user == account_id else system_user,
        docroot=f.docroot(docroot, "docroot"),
        domains=tuple(f.domain(name, "domains") for name in f.split_list(domains, "domains")),
        databases=tuple(
            _database(spec, account_id) for spec in f.split_list(databases, "databases")
        ),
    )
    return (service,)


def _database(spec: str, account_id: str) -> Database:
    """Return a database from 'engine:name' or 'engine:name:user'. Raises FieldError."""
    parts = [account_id if part == account_id else part for part in spec.split(":")]
    if len(parts) not in (2, 3):
        message = f"expected 'engine:name' or 'engine:name:user', got {f.shown(spec)}"
        raise FieldError("databases", message)
    return f.database(parts[0], parts[1], parts[2] if len(parts) == 3 else None, "databases")
