"""The stored snapshot's digest: the same as before for ASCII data, moved by any change."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from daemon.domain.snapshot import AccountSnapshot, Contact, Invoice, LineItem, Service
from daemon.domain.stored_snapshot import snapshot_digest, snapshot_to_json


def _stored(name: str = "Ada Lovelace", item: str = "Web hosting") -> dict[str, Any]:
    invoice = Invoice(
        id="INV-7",
        due_at=datetime(2026, 2, 2, tzinfo=UTC),
        total=Decimal("34.00"),
        amount_due=Decimal("34.00"),
        currency="EUR",
        items=(LineItem(item, Decimal("34.00")),),
    )
    return snapshot_to_json(
        AccountSnapshot(
            account_id="acme",
            plan="default",
            contact=Contact(name, "ada@example.org", "Europe/Berlin"),
            balance=Decimal("34.00"),
            currency="EUR",
            invoices=(invoice,),
            services=(Service("web", "web1", "/srv/www/acme", ("acme.example",)),),
        )
    )


def _earlier_digest(data: dict[str, Any]) -> str:
    """The digest as the releases before orjson wrote it."""
    encoded = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()


def test_an_ascii_snapshot_keeps_the_digest_stored_by_earlier_releases() -> None:
    # Control characters and quotes are escaped alike by both writers.
    data = _stored(item='Hosting "Pro"\t\\ plan\x01')

    assert snapshot_digest(data) == _earlier_digest(data)


def test_any_change_moves_the_digest_and_key_order_does_not() -> None:
    data = _stored()
    reordered = dict(reversed(list(data.items())))

    assert snapshot_digest(reordered) == snapshot_digest(data)
    assert snapshot_digest(_stored(name="Ada Lovelace ")) != snapshot_digest(data)
    assert snapshot_digest(_stored(name="Adä Lovelace")) != snapshot_digest(data)
