"""The `sql` billing source: any database SQLAlchemy reaches, read by a configured query."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import structlog
from sqlalchemy import Connection, Engine, bindparam, create_engine, make_url, text
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from daemon.billing.base import BillingError, BillingSource
from daemon.billing.flat import ReadCache
from daemon.billing.flat_blocks import stream_blocks
from daemon.billing.flat_stream import scattered_accounts
from daemon.billing.listing import Listing, Recalled
from daemon.billing.parse import parse_flat
from daemon.config.schema import SqlBilling
from daemon.domain.snapshot import SyncResult

# Rows fetched per round trip: large enough that the driver is not the bottleneck,
# small enough that a 100k-account result never sits in memory twice.
_CHUNK = 5000
# Scattered accounts are read by id up to this many (their rows are held at once), and
# named this many per query; beyond it, from a second pass over every row.
_APART_MAX = 20_000
_APART_CHUNK = 500

log = structlog.get_logger("lapse.billing")


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
        # The query wrapped to select the rows of named accounts (see _read_apart), and
        # whether that works against this database.
        configured = config.query.strip().rstrip(";")
        self._apart_query = text(
            # The operator's own query, run as configured above; the ids are bound.
            f"SELECT * FROM ({configured}) AS lapse_billing WHERE account_id IN :ids"  # noqa: S608
        ).bindparams(bindparam("ids", expanding=True))
        self._wraps = True
        # Whether a listing looked for scattered accounts before its first (see _scout).
        self._scouted = False
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
        """Run the query and list its accounts as their rows arrive, in blocks (see
        daemon.billing.flat_blocks; fetch_all for the row numbers and the errors raised)."""
        try:
            with self._engine.connect() as connection:
                streaming = connection.execution_options(stream_results=True, yield_per=_CHUNK)
                if not self._scouted:
                    self._scout(streaming)
                result = streaming.execute(self.query)

                def reread() -> Iterator[tuple[int, Sequence[object]]]:
                    return _numbered(streaming.execute(self.query))

                def read_apart(ids: frozenset[str]) -> list[tuple[int, Sequence[object]]] | None:
                    return self._read_apart(ids)

                listings = stream_blocks(
                    list(result.keys()),
                    _numbered(result),
                    self.name,
                    "row",
                    reread,
                    self._apart,
                    read_apart,
                )
                for listing in listings:
                    if isinstance(listing, Recalled):
                        self._apart |= listing.ids
                    yield listing
        except SQLAlchemyError as error:
            message = f"{self.name}: billing query failed: {self._problem(error)}"
            raise BillingError(message) from None

    @property
    def apart(self) -> frozenset[str]:
        """The accounts whose rows this source found scattered and reads apart."""
        return self._apart

    def _scout(self, connection: Connection) -> None:
        """Find the accounts whose rows the query returns apart before the first listing
        lists any, from a read of their account_id cells: a sync that meets such an
        account starts over (it acted on part of its rows), and on a first sync that
        would be every account evaluated and every notice composed twice. Later listings
        learn from their recalls. Raises SQLAlchemyError."""
        result = connection.execute(self.query)
        found = scattered_accounts(list(result.keys()), result, self.name)
        self._apart |= found
        self._scouted = True
        if found:
            log.info("billing rows come back apart; read by account", accounts=len(found))

    def _read_apart(self, ids: frozenset[str]) -> list[tuple[int, Sequence[object]]] | None:
        """Return the rows of the accounts `ids`, read by the configured query wrapped in
        one that selects them by account_id (numbered from 1 in that read), or None when
        they are too many to ask for by id or the query cannot be wrapped (then it is not
        tried again). Errors of that read are the caller's cue to read every row."""
        if not self._wraps or len(ids) > _APART_MAX:
            return None
        rows: list[Sequence[object]] = []
        wanted = sorted(ids)
        try:
            # Its own connection: a failed statement must not abort the listing's
            # transaction (PostgreSQL), and the listing's cursor may still be open.
            with self._engine.connect() as connection:
                for at in range(0, len(wanted), _APART_CHUNK):
                    chunk = wanted[at : at + _APART_CHUNK]
                    rows.extend(connection.execute(self._apart_query, {"ids": chunk}))
        except SQLAlchemyError as error:
            self._wraps = False
            log.warning(
                "billing query cannot be filtered by account; scattered accounts are read "
                "from a second pass over every row",
                source=self.name,
                problem=self._problem(error),
            )
            return None
        return list(_numbered(rows))

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
