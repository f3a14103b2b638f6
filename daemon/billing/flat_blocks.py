"""Flat billing rows cut into blocks of whole accounts, for a sync that passes over the
blocks it already knows.

Listing a million accounts one by one costs some 30 µs of Python each, though nearly
all of them are as the last sync read them. So the rows are cut into runs (`Block`)
whose boundaries depend on the content (a run ends after an account whose id hashes to
a multiple of SPREAD), each digested whole in one call, and an account is listed only
when the engine asks for its run. An account inserted, removed or changed alters only
its own run's digest (and its neighbour's, when it is the account a run ends with);
the runs after it keep their boundaries.

The cut looks at each row's account_id cell only, and keeps what `flat_stream` keeps
across the whole stream (accounts met, accounts read apart, accounts broken by a row
of the wrong width), so that a run listed on its own lists what a listing of every row
would list there. A run that holds rows of an account read apart, or an account broken
by a row outside it, is marked tainted.
"""

from __future__ import annotations

import hashlib
import marshal
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence

from daemon.billing.fields import FieldError
from daemon.billing.flat import _key
from daemon.billing.flat_stream import ReadApart, _SeenKeys, _Streaming
from daemon.billing.listing import Block, Listed, Listing, Refused

# One account in SPREAD ends a block: about SPREAD accounts a block. Smaller blocks
# list fewer unchanged accounts around each change; larger ones cost less per account
# when nothing changed.
SPREAD = 16

# What the digests are made of; a change to it makes every remembered block differ.
_FORMAT = "lapse-block-1"


def ends_block(account_id: str) -> bool:
    """Whether a block ends after the account `account_id`: the same answer in every
    process (not Python's salted hash)."""
    return zlib.crc32(account_id.encode()) % SPREAD == 0


def stream_blocks(
    columns: Sequence[str],
    rows: Iterable[tuple[int, Sequence[object]]],
    source: str,
    unit: str,
    reread: Callable[[], Iterable[tuple[int, Sequence[object]]]],
    apart: frozenset[str] = frozenset(),
    read_apart: ReadApart | None = None,
) -> Iterator[Listing]:
    """List flat billing rows as blocks; takes what `stream_flat` takes.

    Yields a `Block` per run of rows, in row order; then, when accounts turn out
    scattered, a `Recalled` naming them; then the listings of the accounts read apart
    (from the second pass, not in any block). Raises BillingError when a column is
    missing or duplicated.
    """
    reading = _Streaming(columns, source, unit)
    reading.scattered |= apart
    yield from _Cutter(reading, columns).cut(rows)
    yield from reading.recall_and_reread(reread, read_apart)


class FlatBlock(Block):
    """A run of flat rows, listed by the stream's reading when asked."""

    __slots__ = ("_reading", "_rows")

    def __init__(
        self,
        key: str,
        digest: str | None,
        rows: list[tuple[int, Sequence[object]]],
        reading: _Streaming,
        tainted: bool,
    ) -> None:
        super().__init__(key, digest, rows[0][0], tainted)
        self._rows = rows
        self._reading = reading

    def listings(self) -> Iterator[Listed | Refused]:
        """List the run's accounts and errors as the first pass over every row would."""
        reading = self._reading
        # Accounts met again are found by the cut over every row; within the run, the
        # walk starts afresh (and holds only this run's ids).
        reading.seen = _SeenKeys()  # type: ignore[assignment]
        for _closed in reading.walk(self._rows):
            yield from _listings(reading.take())
        yield from _listings(reading.take())

    def refusal(self, number: int, account_id: str | None, field: str, message: str) -> Refused:
        """Return the listing of an error on row `number`, as the reading words it."""
        return self._reading.refusal(number, account_id, FieldError(field, message))


def _listings(out: list[Listing]) -> Iterator[Listed | Refused]:
    """The listings a walk made (accounts and errors only: it makes nothing else)."""
    for listing in out:
        assert isinstance(listing, Listed | Refused)
        yield listing


class _Cutter:
    """The cut of one stream's rows into blocks (see the module docstring)."""

    def __init__(self, reading: _Streaming, columns: Sequence[str]) -> None:
        self.reading = reading
        self.layout = (_FORMAT, tuple(str(name) for name in columns))
        self.met: set[int] = set()  # hashes of every account met, as _SeenKeys keeps them

    def cut(self, rows: Iterable[tuple[int, Sequence[object]]]) -> Iterator[FlatBlock]:
        """Yield the blocks of `rows`, each once its last row is in.

        The same decisions per row as `_Reading.walk`, on the account_id cell alone:
        which account a row opens or continues, which accounts are scattered (met
        again after another's rows) or broken (a row of the wrong width before their
        rows), and whether every id is plain text."""
        reading = self.reading
        scattered, broken, met = reading.scattered, reading.broken, self.met
        width, index, ends = reading.width, reading.id_index, ends_block
        current: str | None = None
        last = ""  # the last account opened in the block
        tainted = False
        block: list[tuple[int, Sequence[object]]] = []
        for line in rows:
            row = line[1]
            if len(row) != width:
                tainted |= self._odd_row(row, current)
                block.append(line)
                continue
            raw = row[index]
            if type(raw) is str:
                key = raw.strip()
                if len(key) != len(raw):
                    reading.plain_ids = False
            else:
                key = _key(raw)
                if raw is not None:
                    reading.plain_ids = False
            if not key or key == current:
                block.append(line)
                continue
            if key in scattered:
                reading._met_apart(key)
                tainted = True
                block.append(line)
                continue
            if current is not None and ends(current):
                yield self._block(last, block, tainted)
                block, tainted = [], False
            current = None
            hashed = hash(key)
            if hashed in met:
                reading._scatter(key)  # listed already, from part of its rows: recalled
                tainted = True
                block.append(line)
                continue
            met.add(hashed)
            tainted |= key in broken
            current = last = key
            block.append(line)
        if block:
            yield self._block(last, block, tainted)

    def _odd_row(self, row: Sequence[object], current: str | None) -> bool:
        """Take a row of the wrong width as `_Streaming._wrong_width` would (without its
        error, which the block's listing reports); return whether it taints the block."""
        reading = self.reading
        key = reading._id_of_odd_row(row)
        if key is None or key in reading.scattered:
            return key is not None
        if key != current and hash(key) in self.met:
            reading._scatter(key)
            return True
        reading.broken.add(key)
        return False

    def _block(
        self, key: str, rows: list[tuple[int, Sequence[object]]], tainted: bool
    ) -> FlatBlock:
        """Return the block of `rows`, which ends with the account `key` ('' when the
        rows open no account: such a block is tainted, having no name to remember)."""
        digest = _digest(self.layout, rows)
        return FlatBlock(key, digest, rows, self.reading, tainted or not key)


def _digest(
    layout: tuple[str, tuple[str, ...]], rows: list[tuple[int, Sequence[object]]]
) -> str | None:
    """Return a stable digest of the rows' cells in order (not their numbers), or None
    when a cell is of a type that does not serialise.

    marshal version 2 writes values and never references to objects met before, so
    equal cells give equal bytes from one process to the next; the rows of a database
    driver are turned into plain tuples first.
    """
    cells = (layout, [tuple(row) for _number, row in rows])
    try:
        encoded = marshal.dumps(cells, 2)
    except ValueError:
        try:
            encoded = repr(cells).encode()  # Decimal, datetime: their repr is their value
        except Exception:  # noqa: BLE001  # a driver's odd cell type: no digest, listed always
            return None
    return hashlib.blake2b(encoded, digest_size=16).hexdigest()
