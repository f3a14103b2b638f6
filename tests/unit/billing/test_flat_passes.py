"""Flat rows are read one account at a time; accounts whose rows are scattered get a
second pass over the rows, and come out exactly as if the rows had been adjacent."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from decimal import Decimal

from daemon.billing.flat import FLAT_COLUMNS, ReadCache, parse_flat
from daemon.domain.snapshot import SyncResult
from tests.unit.billing.helpers import account_rows, flat_row, paid_row

Numbered = list[tuple[int, Sequence[object]]]


def numbered(*rows: dict[str, str]) -> Numbered:
    """Number flat rows from 1, cells in FLAT_COLUMNS order."""
    return [(n, [row[c] for c in FLAT_COLUMNS]) for n, row in enumerate(rows, start=1)]


class Passes:
    """Hands out the rows as one-shot iterators and counts how often they were read."""

    def __init__(self, rows: Numbered) -> None:
        self.rows = rows
        self.count = 0

    def __call__(self) -> Iterator[tuple[int, Sequence[object]]]:
        self.count += 1
        return iter(self.rows)


def parse(rows: Numbered, cache: ReadCache | None = None) -> tuple[SyncResult, int]:
    """Parse `rows` through one-shot iterators; returns the result and the number of passes."""
    passes = Passes(rows)
    result = parse_flat(FLAT_COLUMNS, passes(), "db", "row", cache, reread=passes)
    return result, passes.count


def test_adjacent_rows_are_read_in_one_pass() -> None:
    rows = numbered(*account_rows("acme"), paid_row("zen"), *account_rows("bolt"))

    result, passes = parse(rows)

    assert passes == 1
    assert [s.account_id for s in result.snapshots] == ["acme", "zen", "bolt"]
    assert [s.balance for s in result.snapshots] == [24, 0, 24]


def test_scattered_rows_take_a_second_pass_and_give_the_same_snapshots() -> None:
    hosting, domain = account_rows("acme")
    adjacent, _ = parse(numbered(hosting, domain, paid_row("zen")))

    scattered, passes = parse(numbered(hosting, paid_row("zen"), domain))

    assert passes == 2
    assert scattered == adjacent  # same accounts, same order (first appearance), same values
    (invoice,) = scattered.snapshots[0].invoices
    assert [item.description for item in invoice.items] == ["Hosting", "Domain"]


def test_a_scattered_accounts_error_is_reported_once_with_its_row() -> None:
    good = flat_row("acme")
    bad = flat_row("acme", item_description="Domain", item_amount="four")
    rows = numbered(bad, paid_row("zen"), good, bad)

    result, passes = parse(rows)

    assert passes == 2
    assert [s.account_id for s in result.snapshots] == ["zen"]
    assert [(e.row, e.field) for e in result.errors] == [("row 1", "item_amount")]


def test_a_short_row_met_after_its_account_was_read_still_skips_the_account() -> None:
    rows = numbered(*account_rows("acme"), paid_row("zen"))
    rows.append((4, ["acme", "default"]))  # too few cells, after acme was read

    result, passes = parse(rows)

    assert passes == 2
    assert [s.account_id for s in result.snapshots] == ["zen"]
    assert [(e.row, e.field) for e in result.errors] == [("row 4", "(row)")]


def test_an_unchanged_scattered_account_comes_back_from_the_cache() -> None:
    cache = ReadCache()
    hosting, domain = account_rows("acme")
    rows = numbered(hosting, paid_row("zen"), domain)
    first, _ = parse(rows, cache)

    second, passes = parse(rows, cache)

    assert passes == 2
    assert [a is b for a, b in zip(first.snapshots, second.snapshots, strict=True)] == [True, True]


def test_a_one_shot_iterator_without_reread_is_kept_for_the_second_pass() -> None:
    hosting, domain = account_rows("acme")
    rows = numbered(hosting, paid_row("zen"), domain)

    result = parse_flat(FLAT_COLUMNS, iter(rows), "db", "row")

    assert [(s.account_id, s.balance) for s in result.snapshots] == [
        ("acme", Decimal(24)),
        ("zen", Decimal(0)),
    ]


def test_rows_without_an_account_id_are_reported_and_need_no_second_pass() -> None:
    rows = numbered(
        flat_row(" "), *account_rows("acme"), flat_row(""), paid_row("zen"), flat_row("")
    )

    result, passes = parse(rows)

    assert passes == 1
    assert [s.account_id for s in result.snapshots] == ["acme", "zen"]
    assert [(e.row, e.field) for e in result.errors] == [
        ("row 1", "account_id"),
        ("row 4", "account_id"),
        ("row 6", "account_id"),
    ]
