"""The `file` billing source: a JSON document or a CSV table on disk (the embedded default)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

from daemon.billing.base import BillingError, BillingSource
from daemon.billing.parse import parse_document, parse_flat
from daemon.billing.snapshot import SyncResult
from daemon.config.schema import FileBilling


class FileSource(BillingSource):
    """Reads the whole file on every sync, so an operator's edit shows up at the next one."""

    def __init__(self, config: FileBilling) -> None:
        self.path = config.path
        self.format = _format_of(config.path) if config.format == "auto" else config.format
        self.name = f"file:{self.path}"

    def fetch_all(self) -> SyncResult:
        """Read every account from the file.

        Returns the snapshots and one RowError per skipped account. Raises
        BillingError when the file is missing, unreadable, or not JSON/CSV at all.
        """
        try:
            raw = self.path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as error:
            raise BillingError(f"{self.path}: cannot read the billing file: {error}") from error
        if self.format == "json":
            try:
                document = json.loads(raw)
            except json.JSONDecodeError as error:
                raise BillingError(
                    f"{self.path}: invalid JSON at line {error.lineno}, column {error.colno}: "
                    f"{error.msg}"
                ) from error
            return parse_document(document, str(self.path))
        return _parse_csv(raw, str(self.path))


def _format_of(path: Path) -> str:
    """Return 'json' or 'csv' from the file name; raises BillingError for anything else."""
    suffix = path.suffix.lower()
    if suffix in (".json", ".csv"):
        return suffix[1:]
    raise BillingError(
        f"{path}: cannot tell the billing file's format from its name; "
        "name it .json or .csv, or set billing.format"
    )


def _parse_csv(raw: str, source: str) -> SyncResult:
    """Read a CSV table with a header row; rows are numbered by their line in the file."""
    reader = csv.reader(raw.splitlines())
    try:
        header = next(reader)
    except StopIteration:
        raise BillingError(f"{source}: the CSV file is empty (expected a header row)") from None
    return parse_flat(header, _numbered(reader), source, "line")


def _numbered(reader: Iterator[list[str]]) -> Iterator[tuple[int, Sequence[object]]]:
    """Yield (line number, cells) for every non-blank row after the header."""
    for cells in reader:
        if any(cell.strip() for cell in cells):
            yield reader.line_num, cells  # type: ignore[attr-defined]
