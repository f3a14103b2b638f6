"""Flat billing rows (SQL query, CSV file) listed one account at a time for a streamed sync.

The rows are read as in `daemon.billing.flat`, but each account is handed out as a
`Listed` as soon as its rows end, with a digest of its raw cells, and validated only
if the engine asks. Memory holds one account's rows and a set of the account ids met
so far (as 64-bit hashes), not the table.

Rows of one account need not be adjacent. An account met again after another
account's rows was listed too early, from part of its rows: the stream then says so
(`Recalled`) and lists it again, read from a second pass over the rows. A source
remembers such accounts and passes them as `apart` to later syncs, which read them
from the second pass only, so only the sync that first meets them starts over.

The second pass reads only those accounts' rows when the source can select rows by
account (`read_apart`, an SQL query filtered on their ids) and every account the first
pass met among them comes back; otherwise it reads every row again.
"""

from __future__ import annotations

import hashlib
import marshal
from collections.abc import Callable, Iterable, Iterator, Sequence

from daemon.billing import fields as f
from daemon.billing.fields import FieldError
from daemon.billing.flat import ReadCache, _key, _Reading, column_positions
from daemon.billing.flat_account import ACCOUNT_COLUMNS, AccountReader, BadRowError, Line
from daemon.billing.listing import Listed, Listing, Recalled, Refused, Tree
from daemon.domain.snapshot import AccountSnapshot, RowError

# Where the service cells sit among an account's cells.
_SERVICE = ACCOUNT_COLUMNS.index("host")
_DOCROOT = ACCOUNT_COLUMNS.index("docroot")


def stream_flat(
    columns: Sequence[str],
    rows: Iterable[tuple[int, Sequence[object]]],
    source: str,
    unit: str,
    reread: Callable[[], Iterable[tuple[int, Sequence[object]]]],
    apart: frozenset[str] = frozenset(),
    read_apart: ReadApart | None = None,
) -> Iterator[Listing]:
    """List the accounts of flat billing rows, in order of their rows' end.

    Takes what `parse_flat` takes, `reread` required, the ids of accounts known to be
    scattered (`apart`), which are read from the second pass only, and optionally
    `read_apart`, which returns the rows of the accounts named (None when it cannot).
    Yields a `Listed` per account, a `Refused` per malformed row (ordered by row
    number), and, when accounts turn out scattered, a `Recalled` naming them before
    their full listings. Raises BillingError when a column is missing or duplicated.
    """
    reading = _Streaming(columns, source, unit)
    yield from reading.first_pass(rows, apart)
    yield from reading.recall_and_reread(reread, read_apart)


def scattered_accounts(
    columns: Sequence[str], rows: Iterable[Sequence[object]], source: str
) -> frozenset[str]:
    """Return the ids of the accounts whose rows among `rows` are not adjacent, from
    each row's account_id cell alone: the accounts a listing of the same rows in the same
    order would recall, known before any account is listed. Rows of the wrong width are
    passed over (the listing still recalls what they hide). Raises BillingError when a
    column is missing or duplicated."""
    index = column_positions(columns, source)["account_id"]
    width = len(columns)
    seen = _SeenKeys()
    scattered: set[str] = set()
    current: str | None = None
    for row in rows:
        if len(row) != width:
            continue
        key = _key(row[index])
        if not key or key == current:
            continue
        if key in seen:
            scattered.add(key)
        else:
            seen[key] = None
        current = key
    return frozenset(scattered)


# Given account ids, the rows of those accounts (numbered from 1), or None when the
# source cannot select rows by account.
ReadApart = Callable[[frozenset[str]], "Sequence[tuple[int, Sequence[object]]] | None"]


class FlatListed(Listed):
    """One account's adjacent flat rows, read into a snapshot when asked."""

    __slots__ = ("_group", "_reading")

    def __init__(self, account_id: str, group: list[Line], reading: _Streaming) -> None:
        super().__init__(account_id, _digest(group, reading.reader.optional_columns))
        self._group = group
        self._reading = reading

    def read(self) -> AccountSnapshot | Refused:
        """Validate the rows into a snapshot, or return the first malformed row's error."""
        try:
            return self._reading.reader.read(self._group)
        except BadRowError as bad:
            return self._reading.refusal(bad.number, self.account_id, bad.error)

    def trees(self) -> tuple[Tree, ...]:
        """Return the account's docroot from its first row's cells (none when the service
        cells are blank or do not read)."""
        service = self._group[0][1][_SERVICE : _SERVICE + 5]
        if not any(service):
            return ()
        try:
            return ((f.host(service[0], "host"), f.docroot(service[2], "docroot")),)
        except FieldError:
            return ()


def _digest(group: list[Line], layout: tuple[str, ...]) -> str | None:
    """Return a stable digest of an account's cells (not its row numbers), or None when
    a cell is of a type that does not serialise (such an account is read every time).

    marshal version 2 writes values and never references to objects met before, so
    equal cells give equal bytes from one process to the next.
    """
    cells = (layout, tuple(line[1:] for line in group))
    try:
        encoded = marshal.dumps(cells, 2)  # type: ignore[arg-type]  # cells are checked
    except ValueError:
        try:
            encoded = repr(cells).encode()  # Decimal, datetime: their repr is their value
        except Exception:  # noqa: BLE001  # a driver's odd cell type: no digest, read always
            return None
    return hashlib.blake2b(encoded, digest_size=16).hexdigest()


class _SeenKeys:
    """The account ids met so far, kept as their hashes: a million ids as strings would
    cost some 100 MB. Two ids with one hash (a 1 in 2**64 chance) only cost the second a
    read from the second pass."""

    __slots__ = ("hashes",)

    def __init__(self) -> None:
        self.hashes: set[int] = set()

    def __contains__(self, key: object) -> bool:
        return hash(key) in self.hashes

    def __setitem__(self, key: str, _value: object) -> None:
        self.hashes.add(hash(key))


class _Streaming(_Reading):
    """A flat read that hands out each account when its rows end."""

    def __init__(self, columns: Sequence[str], source: str, unit: str) -> None:
        super().__init__(columns, source, unit, ReadCache())
        self.reader = AccountReader(unit, self.reader.optional_columns)
        self.seen = _SeenKeys()  # type: ignore[assignment]
        self.out: list[Listing] = []
        self.recalled: set[str] = set()
        # The scattered accounts whose rows the first pass met: the second pass must
        # find each of them.
        self.met: set[str] = set()

    def take(self) -> list[Listing]:
        """Return what was listed since the last call, and forget it."""
        out, self.out = self.out, []
        return out

    def first_pass(
        self, rows: Iterable[tuple[int, Sequence[object]]], apart: frozenset[str]
    ) -> Iterator[Listing]:
        """The first pass of `_Reading.stream`, listing each account as its rows end.
        Accounts in `apart` are left to the second pass."""
        self.scattered |= apart
        for _closed in self.walk(rows):
            yield from self.take()
        yield from self.take()  # errors after the last account

    def recall_and_reread(
        self,
        reread: Callable[[], Iterable[tuple[int, Sequence[object]]]],
        read_apart: ReadApart | None,
    ) -> Iterator[Listing]:
        """What a stream lists once its first pass is over: a `Recalled` naming the
        accounts listed from part of their rows, if any, then the listings of every
        scattered account, read from the second pass (`second_pass_rows`)."""
        recalled = frozenset(self.recalled)
        if recalled:
            yield Recalled(recalled)
        if self.scattered:
            self.regroup(self.second_pass_rows(reread, read_apart))
            yield from self.take()

    def second_pass_rows(
        self,
        reread: Callable[[], Iterable[tuple[int, Sequence[object]]]],
        read_apart: ReadApart | None,
    ) -> Iterable[tuple[int, Sequence[object]]]:
        """Return the rows the second pass files: those `read_apart` selects for the
        scattered accounts by id when it can, every account_id cell of the first pass
        was plain text (an id spelled with spaces or stored as a number would escape the
        selection and leave its account read from part of its rows) and they hold every
        account the first pass met among them; else every row again (`reread`).

        Rows read apart are numbered within that read: a malformed one's error names
        its place among them, not in the whole result."""
        if read_apart is not None and self.plain_ids:
            rows = read_apart(frozenset(self.scattered))
            if rows is not None and self.met <= {self._id_of_odd_row(row) for _n, row in rows}:
                return rows
        return reread()

    def _met_apart(self, key: str) -> None:
        self.met.add(key)

    def _scatter(self, key: str) -> None:
        """Mark `key` scattered; it was listed already, so it is recalled."""
        self.scattered.add(key)
        self.recalled.add(key)
        self.met.add(key)

    def _wrong_width(self, number: int, row: Sequence[object], current: str | None) -> None:
        if self._id_of_odd_row(row) in self.scattered:
            return  # the second pass reports it with the account's other rows
        super()._wrong_width(number, row, current)

    def _close(self, key: str, group: list[Line]) -> None:
        if key in self.broken:
            return  # the row that broke it is already reported
        self.out.append(FlatListed(key, group, self))

    def _error(self, number: int, key: str | None, error: FieldError) -> None:
        self.out.append(self.refusal(number, key, error))

    def refusal(self, number: int, key: str | None, error: FieldError) -> Refused:
        """Return the listing of `error`, found on row `number` of account `key`."""
        label = f"{self.unit} {number}"
        return Refused(RowError(self.source, label, error.field, error.message), number, key)
