"""The `file` billing source: a JSON document or a CSV table on disk (the embedded default)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from daemon.billing.base import BillingError, BillingSource
from daemon.billing.parse import parse_document, parse_flat
from daemon.config.schema import FileBilling
from daemon.domain.snapshot import SyncResult

if TYPE_CHECKING:
    from _csv import Reader

# The longest CSV cell Lapse reads (docs/billing.md, "Limits"). A row with a longer
# cell is reported and its account skipped; the rest of the file is read.
CELL_LIMIT = 64 * 1024
# The csv module raises mid-row at its field limit, and a reader that gave up inside
# a quoted cell cannot find where the cell ends: every later row would be suspect.
# So the file is read with the limit at CELL_LIMIT (checked by the reader at no cost)
# and, from the first longer cell on, read again with the limit at this ceiling. Only
# a cell over the ceiling (a broken or hostile file, not a billing value) refuses the
# whole file.
CSV_FIELD_CEILING = 64 * 1024 * 1024


class OversizedCell:
    """Stands in for a CSV cell over CELL_LIMIT: every field check refuses it, and its
    repr says why, so the row is reported under its column like any bad value."""

    __slots__ = ("length",)

    def __init__(self, length: int) -> None:
        self.length = length

    def __repr__(self) -> str:
        return f"a cell of {self.length} characters (the limit is {CELL_LIMIT})"


class FileSource(BillingSource):
    """Reads the whole file on every sync, so an operator's edit shows up at the next one."""

    def __init__(self, config: FileBilling) -> None:
        """Take the file's config; nothing is read yet.

        Raises BillingError when the format is 'auto' and the name ends in neither
        .json nor .csv.
        """
        self.path = config.path
        self.format = _format_of(config.path) if config.format == "auto" else config.format
        self.name = f"file:{self.path}"

    def fetch_all(self) -> SyncResult:
        """Read every account from the file.

        Returns the snapshots and one RowError per skipped account. Raises
        BillingError naming the file when it is missing, unreadable, not UTF-8,
        not valid JSON (with line and column) or not a CSV table with the flat columns.
        """
        source = str(self.path)
        try:
            if self.format == "json":
                return parse_document(_read_json(self.path), source)
            # newline="" is what the csv module needs to read quoted line breaks correctly.
            with self.path.open(encoding="utf-8-sig", newline="") as handle:
                return _parse_csv(handle, source)
        except (OSError, UnicodeDecodeError) as error:
            message = f"{source}: cannot read the billing file: {_reason(error)}"
            raise BillingError(message) from error


def _read_json(path: Path) -> Any:
    """Return the decoded JSON document at `path`; raises BillingError, OSError, UnicodeError."""
    raw = path.read_text(encoding="utf-8-sig")
    try:
        # Decimal, not float: 0.1 + 0.2 must add up to 0.3 in a balance.
        return json.loads(raw, parse_float=Decimal)
    except json.JSONDecodeError as error:
        raise BillingError(
            f"{path}: invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}"
        ) from error


def _reason(error: OSError | UnicodeDecodeError) -> str:
    """Return why a read failed, without repeating the path the message already names."""
    if isinstance(error, UnicodeDecodeError):
        return f"not UTF-8 text (byte {error.start})"
    return error.strerror or str(error)


def _format_of(path: Path) -> str:
    """Return 'json' or 'csv' from the file name; raises BillingError for anything else."""
    suffix = path.suffix.lower()
    if suffix in (".json", ".csv"):
        return suffix[1:]
    raise BillingError(
        f"{path}: cannot tell the billing file's format from its name; "
        "name it .json or .csv, or set billing.format"
    )


def _parse_csv(handle: TextIO, source: str) -> SyncResult:
    """Read a CSV table with a header row; rows are numbered by their first line in the file.

    Takes the open file (seekable: accounts whose rows are not adjacent are read
    in a second pass). Raises BillingError when the file is empty, lacks a flat
    column or is not CSV.
    """
    reader = _csv_reader(handle, CELL_LIMIT)
    try:
        header = next(reader)
    except StopIteration:
        raise BillingError(f"{source}: the CSV file is empty (expected a header row)") from None
    except csv.Error as error:
        raise BillingError(f"{source}: line 1: not a CSV header: {error}") from error

    def reread() -> Iterator[tuple[int, Sequence[object]]]:
        handle.seek(0)
        again = _csv_reader(handle, CELL_LIMIT)
        next(again)  # the header, read fine the first time
        return _numbered(again, handle, source)

    return parse_flat(header, _numbered(reader, handle, source), source, "line", reread=reread)


def _csv_reader(handle: TextIO, limit: int) -> Reader:
    """Return a CSV reader over `handle` that refuses cells over `limit` characters."""
    # The limit is process-wide, hence set with every reader; Lapse reads one file at a time.
    csv.field_size_limit(limit)
    # strict: a stray or unclosed quote is an error, not a cell that silently swallows
    # the rest of the file (and every account in it).
    return csv.reader(handle, strict=True)


def _numbered(
    reader: Reader, handle: TextIO, source: str
) -> Iterator[tuple[int, Sequence[object]]]:
    """Yield (line number, cells) for every non-blank row after the header.

    The number is the row's first line, where an editor shows it; a quoted cell
    may carry the row over several lines. The reader checks cell lengths itself (at
    no cost); at the first cell over CELL_LIMIT the rest is read by _past_long_cell.
    Raises BillingError on broken CSV.
    """
    while True:
        first = reader.line_num + 1
        try:
            cells: list[str] = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            if str(error).startswith("field larger than field limit"):
                yield from _past_long_cell(handle, first, source)
                return
            # A broken quote desynchronises every later row, so the file as a whole is refused.
            raise BillingError(f"{source}: line {first}: not valid CSV: {error}") from error
        if any(cell.strip() for cell in cells):
            yield first, cells


def _past_long_cell(handle: TextIO, first: int, source: str) -> Iterator[tuple[int, list[object]]]:
    """Yield the rows from line `first` on, where a cell over CELL_LIMIT stopped the reader.

    A reader that gave up inside a quoted cell cannot find where that cell ends, so
    the file is read again from its start with the CSV_FIELD_CEILING limit, and from
    line `first` on each row's cells are measured here (the slow way, which the rows
    before it were spared). Raises BillingError on broken CSV or a cell over the ceiling.
    """
    handle.seek(0)
    reader = _csv_reader(handle, CSV_FIELD_CEILING)
    next(reader)  # the header, read fine the first time
    while True:
        start = reader.line_num + 1
        try:
            cells: list[str] = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise BillingError(f"{source}: line {start}: not valid CSV: {error}") from error
        if start < first or not any(cell.strip() for cell in cells):
            continue  # already yielded, or blank
        if max(map(len, cells)) > CELL_LIMIT:
            yield start, _with_oversized(cells)
        else:
            yield start, list(cells)


def _with_oversized(cells: list[str]) -> list[object]:
    """Return `cells` with every cell over CELL_LIMIT replaced by an OversizedCell."""
    return [OversizedCell(len(cell)) if len(cell) > CELL_LIMIT else cell for cell in cells]
