"""The variables a notice template is rendered with, built from a request and the brand."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from daemon.config.schema import BrandConfig
from daemon.domain.snapshot import AccountSnapshot, Invoice
from daemon.notices.catalogs import SOURCE_LANGUAGE, Language
from daemon.notices.money import split_instalments
from daemon.notices.request import NoticeRequest

ENGLISH = Language(SOURCE_LANGUAGE, SOURCE_LANGUAGE)


@dataclass(frozen=True, slots=True)
class PlanOffer:
    """The payment plan a final notice offers: `count` instalments of `amount`.

    `last_amount` differs from `amount` when the total does not split evenly.
    """

    count: int
    amount: Decimal
    last_amount: Decimal


def build_context(
    request: NoticeRequest, brand: BrandConfig, language: Language | None = None
) -> dict[str, Any]:
    """Return the template variables for `request`.

    Takes the request, the operator's brand and the language the notice is written in
    (English when not given); returns a dict whose keys are documented in
    daemon/templates/notices/README.md. Raises nothing: missing deadlines were refused
    when the request was made.
    """
    snapshot = request.snapshot
    return {
        "kind": str(request.kind),
        "language": (language or ENGLISH).tag,
        "number": request.number,
        "now": request.now,
        "brand": brand,
        "contact": snapshot.contact,
        "account_id": snapshot.account_id,
        "plan": snapshot.plan,
        "timezone": snapshot.contact.timezone,
        "currency": snapshot.currency,
        "amount_due": snapshot.balance,
        "invoices": open_invoices(snapshot),
        "credits": snapshot.credits,
        "adjustment": adjustment(snapshot),
        "payment_url": brand.payment_url,
        "record": request.record,
        "policy": request.policy,
        "suspend_at": request.record.suspend_at,
        "delete_at": request.record.delete_at,
        "removal_at": removal_at(request),
        # A deletion that waits for a person's approval happens on that date or later:
        # the removal warning then says "not before", never a date it may miss.
        "deletion_needs_approval": "delete" in request.policy.approve,
        "plan_offer": plan_offer(request),
        "instalments": snapshot.instalments,
        "domains": domains(snapshot),
        "databases": databases(snapshot),
        "download_url": request.download_url,
    }


def open_invoices(snapshot: AccountSnapshot) -> list[Invoice]:
    """Return the invoices with something still owed, oldest due date first."""
    return sorted(
        (invoice for invoice in snapshot.invoices if invoice.amount_due > 0),
        key=lambda invoice: (invoice.due_at, invoice.id),
    )


def adjustment(snapshot: AccountSnapshot) -> Decimal:
    """Return what the balance differs by from the open invoices less the credits: 0 when
    the page adds up on its own, else the amount a notice shows as "other adjustments"
    so that the items, credits and total due it prints always add up."""
    owed = sum((invoice.amount_due for invoice in open_invoices(snapshot)), Decimal(0))
    credited = sum((credit.amount for credit in snapshot.credits), Decimal(0))
    return snapshot.balance - (owed - credited)


def removal_at(request: NoticeRequest) -> datetime | None:
    """Return when the account's data will be deleted, or None when no date is set yet.

    Before suspension the record has no `delete_at`; the final notice then
    names suspend_at + removal_period, the date suspension will set.
    """
    record = request.record
    if record.delete_at is not None:
        return record.delete_at
    if record.suspend_at is not None:
        return record.suspend_at + request.policy.removal_period
    return None


def plan_offer(request: NoticeRequest) -> PlanOffer | None:
    """Return the payment plan to offer, or None when the policy offers none or nothing is owed."""
    count = request.policy.payment_plan_instalments
    balance = request.snapshot.balance
    if count < 1 or balance <= 0:
        return None
    amount, last = split_instalments(balance, count, request.snapshot.currency)
    return PlanOffer(count=count, amount=amount, last_amount=last)


def domains(snapshot: AccountSnapshot) -> list[str]:
    """Return the account's domains across its services, in order, without repeats."""
    names = (name for service in snapshot.services for name in service.domains)
    return list(dict.fromkeys(names))


def databases(snapshot: AccountSnapshot) -> list[str]:
    """Return the names of the account's databases across its services, without repeats."""
    names = (db.name for service in snapshot.services for db in service.databases)
    return list(dict.fromkeys(names))
