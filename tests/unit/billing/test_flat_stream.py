"""Flat rows listed one account at a time for a streamed sync: the same accounts as a
full read, a digest that moves only with the cells, and scattered accounts recalled."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from daemon.billing.flat import FLAT_COLUMNS, parse_flat
from daemon.billing.flat_stream import scattered_accounts, stream_flat
from daemon.billing.listing import Listed, Listing, Recalled, Refused
from tests.unit.billing.helpers import account_rows, flat_row, paid_row

Numbered = list[tuple[int, Sequence[object]]]


def numbered(*rows: dict[str, str]) -> Numbered:
    """Number flat rows from 1, cells in FLAT_COLUMNS order."""
    return [(n, [row[c] for c in FLAT_COLUMNS]) for n, row in enumerate(rows, start=1)]


def listings(rows: Numbered, apart: frozenset[str] = frozenset()) -> list[Listing]:
    """Everything the stream lists for `rows`."""

    def again() -> Iterator[tuple[int, Sequence[object]]]:
        return iter(rows)

    return list(stream_flat(FLAT_COLUMNS, iter(rows), "db", "row", again, apart))


def listed(items: list[Listing]) -> list[Listed]:
    return [item for item in items if isinstance(item, Listed)]


def test_lists_the_accounts_a_full_read_gives() -> None:
    rows = numbered(*account_rows("acme"), paid_row("zen"), *account_rows("bolt"))

    items = listings(rows)

    full = parse_flat(FLAT_COLUMNS, rows, "db", "row")
    assert [item.read() for item in listed(items)] == list(full.snapshots)
    assert not [item for item in items if not isinstance(item, Listed)]


def test_the_digest_moves_with_the_cells_and_not_with_row_numbers() -> None:
    before = listed(listings(numbered(*account_rows("acme"), paid_row("zen"))))
    moved = listed(listings(numbered(paid_row("zen"), *account_rows("acme"))))
    paid = listed(listings(numbered(flat_row("acme", invoice_amount_due="4.00"))))

    assert before[0].digest is not None
    assert before[0].digest == moved[1].digest  # acme, two rows further down
    assert before[0].digest != paid[0].digest


def test_a_malformed_account_is_listed_and_refused_when_read() -> None:
    rows = numbered(paid_row("zen"), *account_rows("acme", invoice_total="lots"))

    (zen, acme) = listed(listings(rows))

    refused = acme.read()
    assert isinstance(refused, Refused)
    assert (refused.error.row, refused.error.field, refused.order) == ("row 2", "invoice_total", 2)
    assert not isinstance(zen.read(), Refused)


def test_trees_come_from_the_cells_without_reading_the_account() -> None:
    (acme,) = listed(listings(numbered(*account_rows("acme"))))

    assert acme.trees() == (("web1", "/srv/www/acme"),)


def test_an_account_met_again_is_recalled_then_listed_whole() -> None:
    hosting, domain = account_rows("acme")
    rows = numbered(hosting, paid_row("zen"), domain)

    items = listings(rows)

    recall = next(i for i, item in enumerate(items) if isinstance(item, Recalled))
    assert items[recall] == Recalled(frozenset({"acme"}))
    before, after = listed(items[:recall]), listed(items[recall:])
    assert [item.account_id for item in before] == ["acme", "zen"]  # acme from one row
    (whole,) = after
    snapshot = whole.read()
    assert not isinstance(snapshot, Refused)
    assert [item.description for item in snapshot.invoices[0].items] == ["Hosting", "Domain"]


def test_accounts_known_apart_are_read_from_the_second_pass_without_a_recall() -> None:
    hosting, domain = account_rows("acme")
    rows = numbered(hosting, paid_row("zen"), domain)

    items = listings(rows, apart=frozenset({"acme"}))

    assert not [item for item in items if isinstance(item, Recalled)]
    assert [item.account_id for item in listed(items)] == ["zen", "acme"]
    adjacent = listed(listings(numbered(hosting, domain)))
    assert listed(items)[1].read() == adjacent[0].read()
    assert listed(items)[1].digest == adjacent[0].digest


def read_apart_listings(rows: Numbered, apart_rows: Numbered | None) -> tuple[list[Listing], int]:
    """Everything the stream lists for `rows` when the source reads scattered accounts by
    id as `apart_rows` (None: it cannot), and how many times it read every row again."""
    rereads: list[int] = []

    def again() -> Iterator[tuple[int, Sequence[object]]]:
        rereads.append(1)
        return iter(rows)

    def by_id(ids: frozenset[str]) -> Numbered | None:
        assert ids == {"acme"}
        return apart_rows

    items = list(stream_flat(FLAT_COLUMNS, iter(rows), "db", "row", again, read_apart=by_id))
    return items, len(rereads)


def test_scattered_accounts_are_read_by_id_when_the_source_can() -> None:
    hosting, domain = account_rows("acme")
    rows = numbered(hosting, paid_row("zen"), domain)

    items, rereads = read_apart_listings(rows, numbered(hosting, domain))

    assert rereads == 0
    assert listed(items)[-1].read() == listed(listings(numbered(hosting, domain)))[0].read()


def test_a_read_by_id_that_misses_an_account_met_gives_way_to_every_row() -> None:
    hosting, domain = account_rows("acme")
    rows = numbered(hosting, paid_row("zen"), domain)

    for apart_rows in (numbered(paid_row("zen")), None):
        items, rereads = read_apart_listings(rows, apart_rows)

        assert rereads == 1
        whole = listed(items)[-1].read()
        assert not isinstance(whole, Refused)
        assert [item.description for item in whole.invoices[0].items] == ["Hosting", "Domain"]


def test_the_accounts_a_listing_would_recall_are_found_from_their_ids_alone() -> None:
    hosting, domain = account_rows("acme")
    rows = numbered(hosting, paid_row("zen"), *account_rows("bolt"), domain, paid_row("zen"))
    recalled = next(item for item in listings(rows) if isinstance(item, Recalled))

    found = scattered_accounts(FLAT_COLUMNS, [cells for _number, cells in rows], "db")

    assert found == recalled.ids == {"acme", "zen"}
