"""The sql source against a real SQLite database file built by each test."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import create_engine, event, text

from daemon.billing.base import BillingError
from daemon.billing.listing import Listed, Recalled, Refused, every_account
from daemon.billing.sql import SqlSource
from daemon.config.schema import SqlBilling
from daemon.domain.snapshot import AccountSnapshot
from tests.unit.billing.helpers import account_rows, fill_billing_table, paid_row, sql_source


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'billing.db'}"


def test_sql_source_reads_rows_into_accounts(db_url: str) -> None:
    fill_billing_table(db_url, [*account_rows("acme"), paid_row("zen")])
    source = sql_source(db_url, "SELECT * FROM billing_lines ORDER BY account_id, rowid")

    result = source.fetch_all()

    assert result.errors == ()
    acme, zen = result.snapshots
    assert acme.balance == Decimal("24.00")
    assert [i.description for i in acme.invoices[0].items] == ["Hosting", "Domain"]
    assert acme.services[0].databases[0].name == "acme_wp"
    assert zen.invoices == ()
    assert source.fetch_one("zen") == zen
    assert source.fetch_one("nobody") is None
    source.close()


def test_sql_malformed_row_skips_its_account_naming_row_and_field(db_url: str) -> None:
    fill_billing_table(
        db_url,
        [*account_rows("acme"), *account_rows("bad", contact_email="not-an-address"),
         paid_row("zen")],
    )  # fmt: skip

    result = sql_source(db_url, "SELECT * FROM billing_lines ORDER BY rowid").fetch_all()

    assert [s.account_id for s in result.snapshots] == ["acme", "zen"]
    (error,) = result.errors
    assert (error.row, error.field) == ("row 3", "contact_email")
    assert "'not-an-address'" in error.message


def test_sql_native_column_types_are_read(tmp_path: Path) -> None:
    # Databases return numbers, decimals and dates, not only text; the parser takes them.
    url = f"sqlite:///{tmp_path / 'typed.db'}"
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (n INTEGER, amount NUMERIC, flag INTEGER)"))
        connection.execute(text("INSERT INTO t VALUES (42, 19.5, 1)"))
    engine.dispose()
    query = """
        SELECT n AS account_id, 'default' AS plan, 'Client' AS contact_name,
               'c@example.com' AS contact_email, NULL AS contact_timezone, 'USD' AS currency,
               NULL AS created_at, flag AS exempt, NULL AS host, NULL AS system_user,
               NULL AS docroot, NULL AS domains, NULL AS databases, 'I-1' AS invoice_id,
               '2026-02-01' AS invoice_due_at, amount AS invoice_total,
               NULL AS invoice_amount_due, 'Hosting' AS item_description, amount AS item_amount
        FROM t
    """

    result = sql_source(url, query).fetch_all()

    assert result.errors == ()
    (account,) = result.snapshots
    assert (account.account_id, account.exempt, account.services) == ("42", True, ())
    assert account.balance == Decimal("19.5")
    assert account.contact.timezone == "UTC"


def test_sql_query_failure_and_missing_columns_are_billing_errors(db_url: str) -> None:
    fill_billing_table(db_url, account_rows("acme"))

    with pytest.raises(BillingError, match=r"billing query failed: no such table: missing_table"):
        sql_source(db_url, "SELECT * FROM missing_table").fetch_all()
    with pytest.raises(BillingError, match=r"billing.db: missing columns: contact_email, "):
        sql_source(db_url, "SELECT account_id, plan, contact_name FROM billing_lines").fetch_all()


def test_sql_connection_failure_names_the_url_without_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LAPSE_TEST_BILLING_PW", "pa55word")
    config = SqlBilling.model_validate(
        {
            "type": "sql",
            "url": "postgresql+psycopg://lapse@127.0.0.1:1/billing",
            "query": "SELECT 1",
            "password": {"env": "LAPSE_TEST_BILLING_PW"},
        }
    )
    source = SqlSource(config)

    assert source.name == "postgresql+psycopg://lapse:***@127.0.0.1:1/billing"
    with pytest.raises(BillingError, match=r"lapse:\*\*\*@127\.0\.0\.1:1/billing") as failed:
        source.fetch_all()
    assert "pa55word" not in str(failed.value)
    assert failed.value.__cause__ is None  # the driver's exception stays out of tracebacks
    source.close()


def test_sql_bad_url_or_missing_driver_is_a_billing_error() -> None:
    with pytest.raises(BillingError, match="not a valid SQLAlchemy URL"):
        SqlSource(SqlBilling(type="sql", url="not a url", query="SELECT 1"))
    with pytest.raises(BillingError, match=r"nosuchdb://h/db: cannot set up the database driver"):
        SqlSource(SqlBilling(type="sql", url="nosuchdb://h/db", query="SELECT 1"))


def test_sql_engine_is_made_once_and_reused(db_url: str) -> None:
    fill_billing_table(db_url, account_rows("acme"))
    source = sql_source(db_url)
    engine = source._engine

    source.fetch_all()
    source.fetch_all()

    assert source._engine is engine
    source.close()
    # After close() the pool is empty; a later sync simply opens a new connection.
    assert len(source.fetch_all().snapshots) == 1


def _statements(source: SqlSource) -> list[str]:
    """The SQL statements the source's engine runs from now on."""
    ran: list[str] = []
    event.listen(
        source._engine,  # the engine is the source's own
        "before_cursor_execute",
        lambda _conn, _cursor, statement, *_rest: ran.append(statement),
    )
    return ran


def _streamed(source: SqlSource) -> dict[str, AccountSnapshot]:
    """The accounts a stream lists last for each id, read (a recalled account's full
    listing follows its partial one)."""
    accounts: dict[str, AccountSnapshot] = {}
    for account_id, snapshot in _read(source).items():
        assert not isinstance(snapshot, Refused), snapshot
        accounts[account_id] = snapshot
    return accounts


def _read(source: SqlSource) -> dict[str, AccountSnapshot | Refused]:
    """What reading each account a stream lists last for each id gives."""
    return {
        listing.account_id: listing.read()
        for listing in every_account(source.stream())
        if isinstance(listing, Listed)
    }


def test_scattered_accounts_are_read_again_by_their_ids_not_every_row(db_url: str) -> None:
    hosting, domain = account_rows("acme")
    fill_billing_table(db_url, [hosting, paid_row("zen"), paid_row("bolt"), domain])
    source = sql_source(db_url)
    ran = _statements(source)

    first = _streamed(source)
    again = _streamed(source)

    assert [i.description for i in first["acme"].invoices[0].items] == ["Hosting", "Domain"]
    assert first == again and set(first) == {"acme", "zen", "bolt"}
    # The first listing's look for scattered accounts, then one read per listing.
    assert ran.count("SELECT * FROM billing_lines") == 3
    assert len([s for s in ran if "WHERE account_id IN" in s]) == 2
    source.close()


def test_accounts_scattered_from_the_start_are_known_before_the_first_listing(
    db_url: str,
) -> None:
    hosting, domain = account_rows("acme")
    fill_billing_table(db_url, [hosting, paid_row("zen"), domain])
    source = sql_source(db_url)

    listings = list(every_account(source.stream()))

    assert not [item for item in listings if isinstance(item, Recalled)]
    assert [item.account_id for item in listings if isinstance(item, Listed)] == ["zen", "acme"]
    source.close()


def test_a_query_that_cannot_be_wrapped_reads_every_row_again(db_url: str) -> None:
    hosting, domain = account_rows("acme")
    fill_billing_table(db_url, [hosting, paid_row("zen"), domain])
    query = "SELECT * FROM billing_lines -- every line"  # wrapped, the comment eats the rest
    source = sql_source(db_url, query)
    ran = _statements(source)

    first = _streamed(source)

    assert [i.description for i in first["acme"].invoices[0].items] == ["Hosting", "Domain"]
    assert ran.count(query) == 3  # the look for scattered accounts, the listing, every row
    source.close()


def test_an_id_spelled_apart_sends_the_second_pass_back_to_every_row(db_url: str) -> None:
    # One row spells the account with a trailing space: selected by its id, the account
    # would be read from its other rows alone; read from every row, the clash shows.
    hosting, domain = account_rows("acme")
    fill_billing_table(db_url, [hosting, paid_row("zen"), domain | {"account_id": "acme "}])
    source = sql_source(db_url)
    ran = _statements(source)

    first = _read(source)

    refused = first["acme"]
    assert isinstance(refused, Refused) and refused.error.field == "account_id"
    assert ran.count("SELECT * FROM billing_lines") == 3  # the look, the listing, every row
    assert not [statement for statement in ran if "WHERE account_id IN" in statement]
    source.close()
