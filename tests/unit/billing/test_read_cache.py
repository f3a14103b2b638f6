"""The flat read cache: unchanged accounts are not validated again at the next sync."""

from __future__ import annotations

from daemon.billing.flat import FLAT_COLUMNS, ReadCache, parse_flat
from tests.unit.billing.helpers import flat_row


def rows(*accounts: dict[str, str]) -> list[tuple[int, list[str]]]:
    """Number flat rows from 1, cells in FLAT_COLUMNS order."""
    return [(n, [a[c] for c in FLAT_COLUMNS]) for n, a in enumerate(accounts, start=1)]


def test_unchanged_accounts_come_back_as_the_same_snapshot_changed_ones_are_read_again() -> None:
    cache = ReadCache()
    first = parse_flat(FLAT_COLUMNS, rows(flat_row("acme"), flat_row("zen")), "t", "row", cache)
    acme, zen = first.snapshots

    second = parse_flat(
        FLAT_COLUMNS,
        rows(flat_row("zen", invoice_total="30.00"), flat_row("acme")),  # order does not matter
        "t",
        "row",
        cache,
    )

    again = {s.account_id: s for s in second.snapshots}
    assert again["acme"] is acme
    assert again["zen"] is not zen
    assert again["zen"].invoices[0].total == 30


def test_a_malformed_account_is_reported_at_every_sync_and_read_once_fixed() -> None:
    cache = ReadCache()
    broken = rows(flat_row("acme", invoice_due_at="soon"))
    for _ in range(2):
        result = parse_flat(FLAT_COLUMNS, broken, "t", "row", cache)
        assert result.snapshots == ()
        assert [e.field for e in result.errors] == ["invoice_due_at"]

    fixed = parse_flat(FLAT_COLUMNS, rows(flat_row("acme")), "t", "row", cache)

    assert [s.account_id for s in fixed.snapshots] == ["acme"]
    assert fixed.errors == ()
