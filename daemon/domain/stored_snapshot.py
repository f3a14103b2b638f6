"""Snapshots to and from JSON, for storing them with the account and in history."""

from __future__ import annotations

import hashlib
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

from daemon.domain.snapshot import (
    AccountSnapshot,
    Contact,
    Credit,
    Database,
    Instalment,
    Invoice,
    LineItem,
    Service,
)


def snapshot_to_json(snapshot: AccountSnapshot) -> dict[str, Any]:
    """Return a JSON-ready dict of `snapshot` (money as strings, times as ISO 8601).

    `credits` and the contact's `language` appear only when there are some, so the
    digest of a snapshot without them is what it was before they were read (no
    needless re-evaluation), and rows stored before then decode unchanged.
    """
    contact: dict[str, Any] = {
        "name": snapshot.contact.name,
        "email": snapshot.contact.email,
        "timezone": snapshot.contact.timezone,
    }
    if snapshot.contact.language is not None:
        contact["language"] = snapshot.contact.language
    data = {
        "account_id": snapshot.account_id,
        "plan": snapshot.plan,
        "contact": contact,
        "balance": str(snapshot.balance),
        "currency": snapshot.currency,
        "created_at": _time(snapshot.created_at),
        "exempt": snapshot.exempt,
        "invoices": [_invoice(invoice) for invoice in snapshot.invoices],
        "services": [_service(service) for service in snapshot.services],
        "instalments": [
            {"due_at": _time(i.due_at), "amount": str(i.amount), "paid": i.paid}
            for i in snapshot.instalments
        ],
    }
    if snapshot.credits:
        data["credits"] = [
            {"description": c.description, "amount": str(c.amount), "kind": c.kind}
            for c in snapshot.credits
        ]
    return data


def snapshot_from_json(data: dict[str, Any]) -> AccountSnapshot:
    """Rebuild a snapshot stored by `snapshot_to_json`. Raises KeyError/ValueError on bad data."""
    return AccountSnapshot(
        account_id=data["account_id"],
        plan=data["plan"],
        contact=Contact(**data["contact"]),
        balance=Decimal(data["balance"]),
        currency=data["currency"],
        created_at=_parse(data["created_at"]),
        exempt=data["exempt"],
        invoices=tuple(_invoice_from(item) for item in data["invoices"]),
        services=tuple(_service_from(item) for item in data["services"]),
        instalments=tuple(
            Instalment(due_at=_required(i["due_at"]), amount=Decimal(i["amount"]), paid=i["paid"])
            for i in data["instalments"]
        ),
        credits=tuple(
            Credit(c["description"], Decimal(c["amount"]), c["kind"])
            for c in data.get("credits", ())
        ),
    )


def snapshot_digest(data: dict[str, Any]) -> str:
    """Return a stable SHA-256 of a JSON snapshot, to store it only when it changed.

    The JSON is orjson's with sorted keys: for ASCII text byte for byte what
    `json.dumps(sort_keys=True, separators=(",", ":"))` wrote before, in a fifth of the
    time (a first sync digests every account). Text beyond ASCII is written as UTF-8
    where json.dumps wrote escapes, so such an account's stored digest differs once:
    the next sync that reads it evaluates it again (deciding what it decided) and
    stores the new digest.
    """
    return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _invoice(invoice: Invoice) -> dict[str, Any]:
    return {
        "id": invoice.id,
        "due_at": _time(invoice.due_at),
        "total": str(invoice.total),
        "amount_due": str(invoice.amount_due),
        "currency": invoice.currency,
        "issued_at": _time(invoice.issued_at),
        "items": [{"description": i.description, "amount": str(i.amount)} for i in invoice.items],
    }


def _invoice_from(data: dict[str, Any]) -> Invoice:
    return Invoice(
        id=data["id"],
        due_at=_required(data["due_at"]),
        total=Decimal(data["total"]),
        amount_due=Decimal(data["amount_due"]),
        currency=data["currency"],
        issued_at=_parse(data["issued_at"]),
        items=tuple(LineItem(i["description"], Decimal(i["amount"])) for i in data["items"]),
    )


def _service(service: Service) -> dict[str, Any]:
    return {
        "host": service.host,
        "system_user": service.system_user,
        "docroot": service.docroot,
        "domains": list(service.domains),
        "databases": [
            {"engine": d.engine, "name": d.name, "user": d.user} for d in service.databases
        ],
    }


def _service_from(data: dict[str, Any]) -> Service:
    return Service(
        host=data["host"],
        system_user=data["system_user"],
        docroot=data["docroot"],
        domains=tuple(data["domains"]),
        databases=tuple(Database(**d) for d in data["databases"]),
    )


def _time(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _parse(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text is not None else None


def _required(text: str) -> datetime:
    return datetime.fromisoformat(text)
