"""Flat billing rows (CSV file, SQL query) grouped into accounts.

One row per open invoice line; an account without an open invoice has one row
with the invoice columns empty. Rows are grouped by account_id (they need not
be adjacent); `flat_account` reads each group. If any row of an account is
malformed the whole account is skipped, because a half-read account must never
lead to an action.

This runs over hundreds of thousands of rows per sync, so each row is only cut
into tuples with `operator.itemgetter` and filed under its account here.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from operator import itemgetter

from daemon.billing.base import BillingError
from daemon.billing.fields import FieldError
from daemon.billing.flat_account import (
    ACCOUNT_COLUMNS,
    INVOICE_COLUMNS,
    ITEM_COLUMNS,
    OPTIONAL_COLUMNS,
    AccountReader,
    BadRowError,
    Line,
    Row,
)
from daemon.domain.snapshot import AccountSnapshot, RowError, SyncResult

FLAT_COLUMNS = ACCOUNT_COLUMNS + INVOICE_COLUMNS + ITEM_COLUMNS

Picker = Callable[[Sequence[object]], Row]


class ReadCache:
    """The accounts one source read at its last sync, by their raw rows.

    Billing data changes little between syncs, so an account whose rows are cell for
    cell the same as last time gets last time's snapshot back (the very same object)
    instead of being validated again; the engine then knows it unchanged too.

    Rows are remembered by their hash, not kept: keeping 100,000 accounts' raw rows
    would double the daemon's memory. The hash is Python's 64-bit tuple hash with a
    per-process random seed, so a change that hashes alike is a 1 in 2**64 chance.
    """

    def __init__(self) -> None:
        self.accounts: dict[str, tuple[int, AccountSnapshot]] = {}


def parse_flat(
    columns: Sequence[str],
    rows: Iterable[tuple[int, Sequence[object]]],
    source: str,
    unit: str,
    cache: ReadCache | None = None,
    reread: Callable[[], Iterable[tuple[int, Sequence[object]]]] | None = None,
) -> SyncResult:
    """Read flat billing rows.

    Takes the column names (matched case-insensitively, extra columns ignored),
    the rows as (number, cells) pairs, the source's name and the word rows are
    counted in ("line" for CSV, "row" for SQL) for the errors. Returns one
    snapshot per readable account, in order of first appearance, and the errors
    in row order. With a `cache`, accounts whose rows did not change since the
    cache's last use are not read again (see ReadCache). Raises BillingError when
    a column is missing or duplicated.

    Each account is read as soon as its rows end, so memory holds one account's
    rows at a time, not the whole table. Rows of one account need not be
    adjacent, though: an account whose rows come back after another account's
    is read again from a second pass over the rows, which `reread` returns
    (without it, `rows` itself is iterated again, after being kept in a list if
    it is a one-shot iterator).
    """
    if reread is None:
        if isinstance(rows, Iterator):
            rows = list(rows)
        kept = rows
        reread = lambda: kept  # noqa: E731  # a list or tuple iterates again as it is
    reading = _Reading(columns, source, unit, cache or ReadCache())
    with paused_gc():
        reading.stream(rows)
        if reading.scattered:
            reading.regroup(reread())
        return reading.result()


@contextmanager
def paused_gc() -> Iterator[None]:
    """Turn the cyclic garbage collector off for the block, then back on if it was on.

    A sync allocates hundreds of thousands of long-lived tuples and snapshots and
    frees none of them, so the collector's repeated passes over the growing heap
    find nothing and cost 40% of the parse. Reference counting still frees what
    the block discards; the few cycles it makes (caught exceptions and their
    tracebacks) are collected once the collector is back on. Process-wide, so
    another thread's garbage also waits those few seconds.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _content_hash(group: list[Line]) -> int | None:
    """Return the hash of an account's cells, or None when a cell cannot be hashed (a
    driver may hand over a list or dict; such an account is simply read every time)."""
    try:
        return hash(tuple(cells for line in group for cells in line[1:]))
    except TypeError:
        return None


def column_positions(columns: Sequence[str], source: str) -> dict[str, int]:
    """Return where each flat column sits among `columns` (compared case-insensitively),
    the OPTIONAL_COLUMNS (language, credits) included when present.

    Raises BillingError naming the missing or duplicated columns.
    """
    names = [str(name).strip().lower() for name in columns]
    missing = [name for name in FLAT_COLUMNS if name not in names]
    doubled = sorted({name for name in FLAT_COLUMNS + OPTIONAL_COLUMNS if names.count(name) > 1})
    if missing or doubled:
        problems = [f"missing columns: {', '.join(missing)}"] if missing else []
        problems += [f"columns given twice: {', '.join(doubled)}"] if doubled else []
        raise BillingError(f"{source}: {'; '.join(problems)} (see docs/billing.md)")
    present = [name for name in FLAT_COLUMNS + OPTIONAL_COLUMNS if name in names]
    return {name: names.index(name) for name in present}


def _picker(positions: dict[str, int], names: tuple[str, ...]) -> Picker:
    """Return a function that takes a row and returns the cells of `names`, as a tuple."""
    getter = itemgetter(*(positions[name] for name in names))
    if len(names) > 1:
        return getter
    return lambda row: (getter(row),)  # itemgetter of one index returns a bare value


def _key(value: object) -> str:
    """Return the grouping key of an account_id cell: stripped text, '' when absent."""
    if isinstance(value, str):
        return value.strip()
    return "" if value is None else str(value)


class _Reading:
    """One read of a flat table: rows filed under their accounts, each account read once
    its rows are all in."""

    def __init__(self, columns: Sequence[str], source: str, unit: str, cache: ReadCache) -> None:
        positions = column_positions(columns, source)
        optional_columns = tuple(name for name in OPTIONAL_COLUMNS if name in positions)
        self.pick_account = _picker(positions, ACCOUNT_COLUMNS + optional_columns)
        self.pick_invoice = _picker(positions, INVOICE_COLUMNS)
        self.pick_item = _picker(positions, ITEM_COLUMNS)
        self.width = len(columns)
        self.id_index = positions["account_id"]
        self.source = source
        self.unit = unit
        self.reader = AccountReader(unit, optional_columns)
        self.previous, cache.accounts = cache.accounts, {}
        self.cache = cache
        # Every account seen, in order of first appearance, with its snapshot once read
        # (None while open, when unreadable, or when scattered).
        self.seen: dict[str, AccountSnapshot | None] = {}
        self.broken: set[str] = set()
        # Whether every account_id cell of the first pass was text spelled as its key
        # (nothing stripped): then selecting rows by key finds all of an account's rows.
        self.plain_ids = True
        # Accounts whose rows are not adjacent: read in the second pass.
        self.scattered: set[str] = set()
        # (row number, account key or None, error), so a scattered account's errors
        # from the first pass can be dropped for the second pass's.
        self.errors: list[tuple[int, str | None, RowError]] = []

    def stream(self, rows: Iterable[tuple[int, Sequence[object]]]) -> None:
        """First pass: collect each account's adjacent rows and read the account when the
        next account's rows begin. An account met again later is marked scattered."""
        for _closed in self.walk(rows):
            pass

    def walk(self, rows: Iterable[tuple[int, Sequence[object]]]) -> Iterator[None]:
        """The first pass (see `stream`), pausing after each account it closes."""
        seen, scattered, width = self.seen, self.scattered, self.width
        pick_account, pick_invoice, pick_item = self.pick_account, self.pick_invoice, self.pick_item
        current: str | None = None
        group: list[Line] = []
        for number, row in rows:
            if len(row) != width:
                self._wrong_width(number, row, current)
                continue
            cells = pick_account(row)
            raw = cells[0]
            key = raw.strip() if type(raw) is str else _key(raw)
            if len(key) != len(raw) if type(raw) is str else raw is not None:
                self.plain_ids = False
            if not key:
                # Belongs to no account, so it neither opens nor interrupts one.
                self._error(number, None, FieldError("account_id", "expected a value, got nothing"))
                continue
            if key != current:
                if key in scattered:
                    self._met_apart(key)
                    continue  # the second pass reads all of its rows
                if current is not None:
                    self._close(current, group)
                    current = None
                    yield None
                if key in seen:
                    self._scatter(key)
                    continue
                seen[key] = None
                current, group = key, []
            group.append((number, cells, pick_invoice(row), pick_item(row)))
        if current is not None:
            self._close(current, group)
            yield None

    def _met_apart(self, key: str) -> None:
        """Note a row of `key`, an account left to the second pass, met in the first."""

    def regroup(self, rows: Iterable[tuple[int, Sequence[object]]]) -> None:
        """Second pass: file every row of the scattered accounts, then read each of them."""
        scattered = self.scattered
        self.errors = [error for error in self.errors if error[1] not in scattered]
        self.broken -= scattered
        groups: dict[str, list[Line]] = {}
        for number, row in rows:
            if len(row) != self.width:
                key = self._id_of_odd_row(row)
                if key in scattered:
                    self.broken.add(key)
                    self._error(number, key, self._width_error(row))
                continue
            cells = self.pick_account(row)
            key = _key(cells[0])
            if key in scattered:
                line = (number, cells, self.pick_invoice(row), self.pick_item(row))
                groups.setdefault(key, []).append(line)
        for key, group in groups.items():
            self._close(key, group)

    def _scatter(self, key: str) -> None:
        """Mark `key` as scattered and forget what the first pass made of it."""
        self.scattered.add(key)
        self.seen[key] = None
        self.cache.accounts.pop(key, None)

    def _wrong_width(self, number: int, row: Sequence[object], current: str | None) -> None:
        """Record a row with too few or too many cells; its account is skipped."""
        key = self._id_of_odd_row(row)
        if key is not None and key != current and key in self.seen:
            self._scatter(key)  # already read without this row: the second pass decides
        elif key is not None:
            self.broken.add(key)
        self._error(number, key, self._width_error(row))

    def _id_of_odd_row(self, row: Sequence[object]) -> str | None:
        """Return the account key of a row of the wrong width, None when it is too short
        to have an account_id cell."""
        return _key(row[self.id_index]) if self.id_index < len(row) else None

    def _width_error(self, row: Sequence[object]) -> FieldError:
        """Return the error for a row with too few or too many cells."""
        return FieldError("(row)", f"expected {self.width} cells like the header, got {len(row)}")

    def _error(self, number: int, key: str | None, error: FieldError) -> None:
        """Record `error` as found on row `number` of account `key`."""
        label = f"{self.unit} {number}"
        self.errors.append((number, key, RowError(self.source, label, error.field, error.message)))

    def _close(self, key: str, group: list[Line]) -> None:
        """Read the account `key` from all its rows (reusing the cache when they did not
        change) and remember its snapshot, or record why it cannot be read."""
        if key in self.broken:
            return  # the row that broke it is already reported
        content = _content_hash(group)
        known = self.previous.get(key)
        if known is not None and content is not None and known[0] == content:
            self.seen[key] = known[1]
            self.cache.accounts[key] = known
            return
        try:
            snapshot = self.reader.read(group)
        except BadRowError as bad:
            self._error(bad.number, key, bad.error)
            return
        self.seen[key] = snapshot
        if content is not None:
            self.cache.accounts[key] = (content, snapshot)

    def result(self) -> SyncResult:
        """Return the snapshots in order of first appearance and the errors in row order."""
        snapshots = tuple(snapshot for snapshot in self.seen.values() if snapshot is not None)
        self.errors.sort(key=lambda error: error[0])
        return SyncResult(snapshots, tuple(error for _number, _key, error in self.errors))
