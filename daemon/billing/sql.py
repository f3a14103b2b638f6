"""The `sql` billing source: any database SQLAlchemy reaches, read by a configured query."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from daemon.billing.base import BillingError, BillingSource
from daemon.billing.flat import ReadCache
from daemon.billing.flat_stream import stream_flat
from daemon.billing.listing import Listing, Recalled
from daemon.billing.parse import parse_flat
from daemon.config.schema import SqlBilling
from daemon.domain.snapshot import SyncResult

# Rows fetched per round trip: large enough that the driver is not the bottleneck,
# small enough that a 100k-account result never sits in memory twice.
_CHUNK = 5000


class SqlSource(BillingSource):
    """Runs the configured SELECT and reads its rows as flat billing lines.

    The engine (and its connection pool) is made once and reused by every sync;
    `close()` disposes of it.
    """

    def __init__(self, config: SqlBilling) -> None:
        """Build the engine for `config.url` with the configured password; connects lazily.

        Raises BillingError when the URL does not parse or its driver is not
        installed, and SecretError when the password cannot be read.
        """
        try:
            url = make_url(config.url)
        except ArgumentError:
            # The message would quote the whole URL, which may hold a password; say less.
            raise BillingError("billing.url is not a valid SQLAlchemy URL") from None
        if config.password is not None:
            url = url.set(password=config.password.reveal())
        # The name goes into errors and logs, so it never carries the password.
        self.name = url.render_as_string(hide_password=True)
        self._password = url.password
        self.query = text(config.query)
        try:
            self._engine: Engine = create_engine(url, pool_pre_ping=True)
        except (SQLAlchemyError, ImportError) as error:
            raise BillingError(f"{self.name}: cannot set up the database driver: {error}") from None
        self._cache = ReadCache()
        # Accounts whose rows came back scattered at an earlier sync (see flat_stream).
        self._apart: frozenset[str] = frozenset()

    def fetch_all(self) -> SyncResult:
        """Run the query and read every row, streaming them in chunks.

        Returns the snapshots and one RowError per skipped account ("row N" counts
        result rows from 1). Raises BillingError, naming the URL without its
        password, when the database cannot be reached, the query fails, or a flat
        column is missing from the result.
        """
        try:
            with self._engine.connect() as connection:
                # stream_results uses a server-side cursor where the driver has one
                # (psycopg, pymysql's SSCursor); yield_per fetches _CHUNK rows at a time.
                streaming = connection.execution_options(stream_results=True, yield_per=_CHUNK)
                result = streaming.execute(self.query)
                columns = list(result.keys())

                def reread() -> Iterator[tuple[int, Sequence[object]]]:
                    # Accounts whose rows are not adjacent are read from a second run.
                    return _numbered(streaming.execute(self.query))

                return parse_flat(
                    columns, _numbered(result), self.name, "row", self._cache, reread=reread
                )
        except SQLAlchemyError as error:
            message = f"{self.name}: billing query failed: {self._problem(error)}"
            raise BillingError(message) from None

    def stream(self) -> Iterator[Listing]:
        """Run the query and list its accounts as their rows arrive (see fetch_all for the
        row numbers and the errors raised)."""
        try:
            with self._engine.connect() as connection:
                streaming = connection.execution_options(stream_results=True, yield_per=_CHUNK)
                result = streaming.execute(self.query)

                def reread() -> Iterator[tuple[int, Sequence[object]]]:
                    return _numbered(streaming.execute(self.query))

                listings = stream_flat(
                    list(result.keys()), _numbered(result), self.name, "row", reread, self._apart
                )
                for listing in listings:
                    if isinstance(listing, Recalled):
                        self._apart |= listing.ids
                    yield listing
        except SQLAlchemyError as error:
            message = f"{self.name}: billing query failed: {self._problem(error)}"
            raise BillingError(message) from None

    def close(self) -> None:
        """Close every pooled connection; a later fetch opens new ones."""
        self._engine.dispose()

    def _problem(self, error: SQLAlchemyError) -> str:
        """Return the first line of the driver's message, with the password masked.

        `from None` above keeps the driver's exception (and its connection
        parameters) out of tracebacks; this masks the password should a driver
        quote its DSN.
        """
        lines = str(getattr(error, "orig", None) or error).strip().splitlines()
        problem = lines[0] if lines else type(error).__name__
        if self._password:
            problem = problem.replace(self._password, "***")
        return problem


def _numbered(rows: Iterable[Sequence[object]]) -> Iterator[tuple[int, Sequence[object]]]:
    """Yield (row number from 1, cells) for every result row."""
    return enumerate(rows, start=1)
