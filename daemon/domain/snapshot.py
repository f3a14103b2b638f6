"""The billing snapshot: what one sync tells Lapse about one account.

Snapshots are immutable values built by the billing sources and read by the
policy engine. Every datetime is timezone-aware UTC; money is `Decimal`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class LineItem:
    """One line of an invoice."""

    description: str
    amount: Decimal


@dataclass(frozen=True, slots=True)
class Invoice:
    """An open (unpaid or partly paid) invoice.

    `amount_due` is what is still owed on it; `total` is the invoice's total.
    """

    id: str
    due_at: datetime
    total: Decimal
    amount_due: Decimal
    currency: str
    items: tuple[LineItem, ...] = ()
    issued_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Contact:
    """Who receives the notices, the time zone dates are shown in, and the language the
    notices are written in.

    `language` is a CLDR locale identifier as Babel spells it ('de', 'de_DE', 'pt_BR',
    'ja'), or None when billing states none: the brand's language (`[notices.brand]
    language`) then applies. It also picks how amounts and dates are written.
    """

    name: str
    email: str
    timezone: str = "UTC"
    language: str | None = None


@dataclass(frozen=True, slots=True)
class Database:
    """A database that belongs to the account on its host."""

    engine: str  # "mariadb" or "postgresql"
    name: str
    user: str | None = None


@dataclass(frozen=True, slots=True)
class Service:
    """A hosting service: where the account's site lives."""

    host: str
    system_user: str
    docroot: str
    domains: tuple[str, ...] = ()
    databases: tuple[Database, ...] = ()


@dataclass(frozen=True, slots=True)
class Instalment:
    """One instalment of an agreed payment plan."""

    due_at: datetime
    amount: Decimal
    paid: bool = False


@dataclass(frozen=True, slots=True)
class Credit:
    """Money the client has with us that no open invoice shows.

    `kind` is "credit" (a credit note, account credit) or "payment" (a payment
    received but not yet applied to an invoice). `amount` is positive; it lowers
    the total due, and the final notice lists it so the page adds up.
    """

    description: str
    amount: Decimal
    kind: str = "credit"


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    """Everything one sync knows about one account.

    `balance` is the total still owed across open invoices (never negative for
    the engine's purposes). `exempt` is the billing system's "never suspend"
    flag. `instalments` is a payment plan agreed in the billing system, empty
    when there is none. `credits` are credits and unapplied payments, which
    `balance` already takes into account.
    """

    account_id: str
    plan: str
    contact: Contact
    balance: Decimal
    currency: str
    invoices: tuple[Invoice, ...] = ()
    services: tuple[Service, ...] = ()
    created_at: datetime | None = None
    exempt: bool = False
    instalments: tuple[Instalment, ...] = field(default=())
    credits: tuple[Credit, ...] = ()

    def oldest_due_at(self) -> datetime | None:
        """Return the due date of the oldest open invoice, or None when none is open."""
        dues = [invoice.due_at for invoice in self.invoices if invoice.amount_due > 0]
        return min(dues) if dues else None


@dataclass(frozen=True, slots=True)
class RowError:
    """A billing row that was skipped because it could not be read.

    `row` names the row the way an operator finds it (a line number, an index
    in a JSON array, an account id); `field` is the offending field's name.
    """

    source: str
    row: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.source}: row {self.row}: field '{self.field}': {self.message}"


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What a billing source returned: the good snapshots and the skipped rows."""

    snapshots: tuple[AccountSnapshot, ...]
    errors: tuple[RowError, ...] = ()
