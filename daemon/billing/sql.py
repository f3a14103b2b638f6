"""The `sql` billing source: any database SQLAlchemy reaches, read by a configured query."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.exc import SQLAlchemyError

from daemon.billing.base import BillingError, BillingSource
from daemon.billing.parse import parse_flat
from daemon.billing.snapshot import SyncResult
from daemon.config.schema import SqlBilling

# Rows fetched per round trip: large enough that the driver is not the bottleneck,
# small enough that a 100k-account result never sits in memory twice.
_CHUNK = 5000


class SqlSource(BillingSource):
    """Runs the configured SELECT and reads its rows as flat billing lines."""

    def __init__(self, config: SqlBilling) -> None:
        url = make_url(config.url)
        if config.password is not None:
            url = url.set(password=config.password.reveal())
        self.query = text(config.query)
        # The name goes into errors and logs, so it never carries the password.
        self.name = url.render_as_string(hide_password=True)
        self._engine: Engine = create_engine(url, pool_pre_ping=True)

    def fetch_all(self) -> SyncResult:
        """Run the query and read every row.

        Returns the snapshots and one RowError per skipped account. Raises
        BillingError (naming the URL without its password) when the database
        cannot be reached or the query fails, or a flat column is missing.
        """
        try:
            with self._engine.connect() as connection:
                result = connection.execution_options(
                    stream_results=True, yield_per=_CHUNK
                ).execute(self.query)
                columns = list(result.keys())
                return parse_flat(columns, _numbered(result), self.name, "row")
        except SQLAlchemyError as error:
            problem = str(getattr(error, "orig", None) or error).splitlines()[0]
            raise BillingError(f"{self.name}: billing query failed: {problem}") from error

    def close(self) -> None:
        """Close the connection pool."""
        self._engine.dispose()


def _numbered(rows: Iterator[Sequence[object]]) -> Iterator[tuple[int, Sequence[object]]]:
    """Yield (row number from 1, cells) for every result row."""
    return enumerate(rows, start=1)
