"""The bundled sample billing document: clean, and at every stage of the default policy."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from daemon.billing.file import FileSource
from daemon.billing.samples import ensure_sample_billing, write_sample_billing
from daemon.config.schema import FileBilling

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def test_sample_parses_cleanly_with_accounts_at_every_stage(tmp_path: Path) -> None:
    path = tmp_path / "data" / "billing.json"
    write_sample_billing(path, NOW)

    result = FileSource(FileBilling(type="file", path=path)).fetch_all()

    assert result.errors == ()
    accounts = {s.account_id: s for s in result.snapshots}
    assert sorted(accounts) == [
        "acme", "bluebird", "cobalt", "delta", "echo", "foxtrot", "golf", "hotel", "india",
    ]  # fmt: skip
    overdue = {key: s.oldest_due_at() for key, s in accounts.items()}
    assert overdue["acme"] is None and accounts["acme"].balance == 0
    assert overdue["bluebird"] == NOW + timedelta(days=5)
    assert overdue["cobalt"] == NOW - timedelta(days=4)  # past +3d: first reminder
    assert overdue["delta"] == NOW - timedelta(days=12)  # past +10d: second reminder
    assert overdue["echo"] == NOW - timedelta(days=30)  # past +28d: final notice
    assert accounts["foxtrot"].exempt and overdue["foxtrot"] is not None
    assert overdue["golf"] is not None and accounts["golf"].instalments
    assert accounts["hotel"].balance == Decimal("0.50")
    assert accounts["india"].plan == "express" and overdue["india"] == NOW - timedelta(days=10)
    assert {s.currency for s in accounts.values()} == {"EUR", "USD", "JPY"}
    assert accounts["echo"].balance == accounts["echo"].balance.to_integral_value()
    for account_id, snapshot in accounts.items():
        assert snapshot.contact.email.endswith("@example.com")
        (service,) = snapshot.services
        assert service.host == "localhost"
        assert service.system_user == account_id
        assert service.docroot == str(tmp_path / "data" / "sites" / account_id)
        assert service.domains == (f"{account_id}.example.test",)
        for invoice in snapshot.invoices:
            assert 1 <= len(invoice.items) <= 3
    assert any(s.services[0].databases for s in accounts.values())


def test_sample_writes_yen_as_integers(tmp_path: Path) -> None:
    path = tmp_path / "billing.json"
    write_sample_billing(path, NOW)

    (echo,) = [a for a in json.loads(path.read_text())["accounts"] if a["account_id"] == "echo"]

    invoice = echo["invoices"][0]
    assert all(type(item["amount"]) is int for item in invoice["items"])
    assert type(invoice["total"]) is int


def test_ensure_sample_billing_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "billing.json"

    assert ensure_sample_billing(path, NOW) is True
    path.write_text('{"accounts": []}')
    assert ensure_sample_billing(path, NOW) is False
    assert path.read_text() == '{"accounts": []}'
