"""Raw billing records to snapshots: the two shapes a billing source can deliver.

- nested: a JSON document of account objects (file and HTTP sources), see `parse_document`;
- flat: one row per open invoice line (CSV file and SQL sources), see `parse_flat`.

Both validate strictly and skip a malformed account with a RowError, keeping the
others; docs/billing.md describes the formats and the rules.
"""

from __future__ import annotations

from daemon.billing.flat import FLAT_COLUMNS, parse_flat
from daemon.billing.nested import parse_document

__all__ = ["FLAT_COLUMNS", "parse_document", "parse_flat"]
