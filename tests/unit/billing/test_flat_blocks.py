"""Flat rows cut into blocks: the blocks list exactly what a listing of every row
lists, whatever the rows (scattered, malformed, of no account), and a change to one
account moves the digest of its own block only."""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Sequence

import pytest

from daemon.billing import flat_blocks
from daemon.billing.flat import FLAT_COLUMNS
from daemon.billing.flat_blocks import stream_blocks
from daemon.billing.flat_stream import stream_flat
from daemon.billing.listing import Block, Listed, Listing, Recalled, Refused, every_account
from daemon.billing.overlap import TreeIndex
from tests.unit.billing.helpers import account_rows, paid_row

Numbered = list[tuple[int, Sequence[object]]]


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of some three accounts, so that a handful of accounts spans several."""
    monkeypatch.setattr(flat_blocks, "SPREAD", 3)


def numbered(rows: list[Sequence[object]]) -> Numbered:
    return list(enumerate(rows, start=1))


def cells(row: dict[str, str]) -> list[object]:
    return [row[column] for column in FLAT_COLUMNS]


def described(items: Iterable[Listing], walk: bool = True) -> list[tuple[str, object]]:
    """What a consumer can tell of a listing, taken as it comes (each block listed when
    it is handed out, as a sync does): each account's id, digest, read and trees, each
    error, each recall."""
    out: list[tuple[str, object]] = []
    if not walk:
        items = (item for item in items if not isinstance(item, Block))
    for item in every_account(items):
        if isinstance(item, Listed):
            out.append(("listed", (item.account_id, item.digest, item.read(), item.trees())))
        elif isinstance(item, Refused):
            out.append(("refused", item))
        else:
            assert isinstance(item, Recalled)
            out.append(("recalled", item.ids))
    return out


def both(rows: Numbered, apart: frozenset[str] = frozenset()) -> tuple[Iterator[Listing], ...]:
    """What stream_flat and stream_blocks list for `rows`."""

    def again() -> Iterator[tuple[int, Sequence[object]]]:
        return iter(rows)

    def by_id(ids: frozenset[str]) -> Numbered:
        # As an SQL source selects them: the account_id cell exactly one of `ids`.
        return numbered([row for _number, row in rows if len(row) > 0 and row[0] in ids])

    flat = stream_flat(FLAT_COLUMNS, iter(rows), "db", "row", again, apart, by_id)
    blocks = stream_blocks(FLAT_COLUMNS, iter(rows), "db", "row", again, apart, by_id)
    return flat, blocks


def tricky_rows(seed: int) -> list[Sequence[object]]:
    """Rows of a few accounts in a random order: some owing (two rows), some scattered,
    some malformed (wrong width, a bad value), some of no account."""
    chance = random.Random(seed)
    rows: list[Sequence[object]] = []
    for number in range(chance.randint(1, 14)):
        account_id = f"c{chance.randint(0, 9)}"
        kind = chance.random()
        if kind < 0.5:
            rows.extend(cells(row) for row in account_rows(account_id))
        elif kind < 0.68:
            rows.append(cells(paid_row(account_id)))
        elif kind < 0.75:
            rows.append(cells(paid_row(account_id) | {"account_id": f" {account_id}"}))
        elif kind < 0.83:
            rows.append(cells(paid_row(account_id))[:-1])  # a cell short
        elif kind < 0.9:
            rows.append(cells(paid_row(account_id) | {"currency": "euro"}))
        else:
            rows.append(cells(paid_row(f"x{number}") | {"account_id": " "}))
    return rows


@pytest.mark.parametrize("seed", range(300))
def test_blocks_list_what_a_listing_of_every_row_lists(seed: int) -> None:
    rows = numbered(tricky_rows(seed))
    apart = frozenset({"c7"}) if seed % 2 else frozenset()

    flat, blocks = both(rows, apart)

    assert what_counts(described(blocks)) == what_counts(described(flat))


@pytest.mark.parametrize("seed", range(300))
def test_accounts_read_apart_are_read_the_same_when_no_block_is_listed(seed: int) -> None:
    """A sync that passes over every block still reads the scattered accounts whole."""
    rows = numbered(tricky_rows(seed))

    flat, blocks = both(rows, frozenset({"c7"}))

    last = {value[0]: value for kind, value in described(flat) if kind == "listed"}  # type: ignore[index]
    apart = [value for kind, value in described(blocks, walk=False) if kind == "listed"]
    assert apart == [last[value[0]] for value in apart]  # type: ignore[index]


def what_counts(items: list[tuple[str, object]]) -> list[tuple[str, object]]:
    """What a sync acts on: everything when nothing is recalled, else the recall and what
    follows it (a sync starts over at a recall, and the blocks may have told the
    scattered accounts earlier than a listing of every row, listing less of them)."""
    recalls = [at for at, (kind, _value) in enumerate(items) if kind == "recalled"]
    return items[recalls[-1] :] if recalls else items


def _blocks(rows: list[dict[str, str]]) -> list[Block]:
    numbered_rows = numbered([cells(row) for row in rows])
    _flat, items = both(numbered_rows)
    return [item for item in items if isinstance(item, Block)]


def test_a_changed_account_moves_the_digest_of_its_own_block_only() -> None:
    rows = [paid_row(f"a{n:03d}") for n in range(60)]
    before = {block.key: block.digest for block in _blocks(rows)}
    assert len(before) > 5

    rows[30] = rows[30] | {"contact_name": "Someone Else"}
    after = {block.key: block.digest for block in _blocks(rows)}

    assert set(after) == set(before)
    assert [key for key in before if before[key] != after[key]] == [
        next(key for key in sorted(before) if key >= "a030")
    ]


@pytest.mark.parametrize("ends", [False, True])
def test_an_inserted_account_leaves_the_other_blocks_as_they_were(ends: bool) -> None:
    rows = [paid_row(f"a{n:03d}") for n in range(60)]
    before = {block.key: block.digest for block in _blocks(rows)}
    new = next(f"n{n}" for n in range(99) if flat_blocks.ends_block(f"n{n}") is ends)

    after = {block.key: block.digest for block in _blocks([*rows[:30], paid_row(new), *rows[30:]])}

    changed = [key for key in after if before.get(key) != after[key]]
    # Its own block changed; an account that ends a block splits it in two.
    assert len(changed) == (2 if ends else 1) and len(after) == len(before) + ends


def test_stored_tree_hashes_add_up_as_the_accounts_would() -> None:
    accounts = [
        (("web1", "/srv/www/a"),),
        (("web1", "/srv/www/b"), ("web2", "/srv/www/a")),
        (("web1", "/srv/www/a"),),  # the same tree as the first
        (("web1", "/srv/www/b/shop"),),  # inside the second
        (),
    ]
    one_by_one = TreeIndex()
    own: list[int] = []
    above: set[int] = set()
    for trees in accounts:
        mine, parents = one_by_one.add(trees)
        own.extend(mine)
        above |= parents

    stored = TreeIndex()
    stored.add_hashes(own[:3], above)
    stored.add_hashes(own[3:], ())

    assert stored.suspects() == one_by_one.suspects() and stored.suspects()
