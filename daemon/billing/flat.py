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
    AccountReader,
    BadRowError,
    Line,
    Row,
)
from daemon.billing.snapshot import AccountSnapshot, RowError, SyncResult

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
) -> SyncResult:
    """Read flat billing rows.

    Takes the column names (matched case-insensitively, extra columns ignored),
    the rows as (number, cells) pairs, the source's name and the word rows are
    counted in ("line" for CSV, "row" for SQL) for the errors. Returns one
    snapshot per readable account, in order of first appearance, and the errors
    in row order. With a `cache`, accounts whose rows did not change since the
    cache's last use are not read again (see ReadCache). Raises BillingError when
    a column is missing or duplicated.
    """
    grouper = _Grouper(columns, source, unit)
    with paused_gc():
        grouper.add(rows)
        return grouper.result(cache or ReadCache())


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
    """Return where each flat column sits among `columns` (compared case-insensitively).

    Raises BillingError naming the missing or duplicated columns.
    """
    names = [str(name).strip().lower() for name in columns]
    missing = [name for name in FLAT_COLUMNS if name not in names]
    doubled = sorted({name for name in FLAT_COLUMNS if names.count(name) > 1})
    if missing or doubled:
        problems = [f"missing columns: {', '.join(missing)}"] if missing else []
        problems += [f"columns given twice: {', '.join(doubled)}"] if doubled else []
        raise BillingError(f"{source}: {'; '.join(problems)} (see docs/billing.md)")
    return {name: names.index(name) for name in FLAT_COLUMNS}


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


class _Grouper:
    """Files the rows of one sync under their accounts, then reads each account."""

    def __init__(self, columns: Sequence[str], source: str, unit: str) -> None:
        positions = column_positions(columns, source)
        self.pick_account = _picker(positions, ACCOUNT_COLUMNS)
        self.pick_invoice = _picker(positions, INVOICE_COLUMNS)
        self.pick_item = _picker(positions, ITEM_COLUMNS)
        self.width = len(columns)
        self.id_index = positions["account_id"]
        self.source = source
        self.unit = unit
        self.groups: dict[str, list[Line]] = {}
        self.broken: set[str] = set()
        self.errors: list[tuple[int, RowError]] = []

    def add(self, rows: Iterable[tuple[int, Sequence[object]]]) -> None:
        """File each of `rows` under its account; a row of the wrong width is an error."""
        groups, width = self.groups, self.width
        pick_account, pick_invoice, pick_item = self.pick_account, self.pick_invoice, self.pick_item
        for number, row in rows:
            if len(row) != width:
                self._wrong_width(number, row)
                continue
            cells = pick_account(row)
            key = cells[0]
            key = key.strip() if type(key) is str else _key(key)
            line = (number, cells, pick_invoice(row), pick_item(row))
            group = groups.get(key)
            if group is None:
                groups[key] = [line]
            else:
                group.append(line)

    def _wrong_width(self, number: int, row: Sequence[object]) -> None:
        """Record a row with too few or too many cells; its account is skipped."""
        if self.id_index < len(row):
            self.broken.add(_key(row[self.id_index]))
        message = f"expected {self.width} cells like the header, got {len(row)}"
        self._error(number, FieldError("(row)", message))

    def _error(self, number: int, error: FieldError) -> None:
        """Record `error` as found on row `number`."""
        label = f"{self.unit} {number}"
        self.errors.append((number, RowError(self.source, label, error.field, error.message)))

    def result(self, cache: ReadCache) -> SyncResult:
        """Read every filed account (reusing `cache` for unchanged ones, and refilling it);
        returns the snapshots and the errors in row order."""
        reader = AccountReader(self.unit)
        snapshots: list[AccountSnapshot] = []
        previous, cache.accounts = cache.accounts, {}
        for key, group in self.groups.items():
            if key in self.broken:
                continue  # the row that broke it is already reported
            if not key:
                for line in group:
                    self._error(line[0], FieldError("account_id", "expected a value, got nothing"))
                continue
            content = _content_hash(group)
            known = previous.get(key)
            if known is not None and content is not None and known[0] == content:
                snapshots.append(known[1])
                cache.accounts[key] = known
                continue
            try:
                snapshot = reader.read(group)
            except BadRowError as bad:
                self._error(bad.number, bad.error)
                continue
            snapshots.append(snapshot)
            if content is not None:
                cache.accounts[key] = (content, snapshot)
        self.errors.sort(key=lambda pair: pair[0])
        return SyncResult(tuple(snapshots), tuple(error for _number, error in self.errors))
