"""The sql billing source against the lab's real PostgreSQL (server-side cursor streaming)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import create_engine, text

from tests.lab.services.postgres import PostgresServer
from tests.unit.billing.helpers import account_rows, fill_billing_table, paid_row, sql_source


def test_sql_source_reads_a_postgresql_billing_table(postgres: PostgresServer) -> None:
    url = postgres.create_database("billing_lines_test")
    fill_billing_table(
        url,
        [*account_rows("acme"), *account_rows("bad", invoice_total="twelve"), paid_row("zen")],
    )
    source = sql_source(url, "SELECT * FROM billing_lines ORDER BY account_id, ctid")

    result = source.fetch_all()
    source.close()

    acme, zen = result.snapshots
    assert acme.balance == Decimal("24.00")
    assert [item.amount for item in acme.invoices[0].items] == [Decimal("20.00"), Decimal("4.00")]
    assert zen.invoices == ()
    (error,) = result.errors
    assert (error.row, error.field) == ("row 3", "invoice_total")
    assert "'twelve'" in error.message


def test_sql_source_reads_native_postgresql_types_from_a_view(postgres: PostgresServer) -> None:
    # A billing system's view returns numeric, timestamptz and boolean, not text.
    url = postgres.create_database("billing_view_test")
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(
            text(
                "CREATE TABLE invoices (client text, due timestamptz, total numeric(10,2),"
                " vip boolean)"
            )
        )
        connection.execute(
            text("INSERT INTO invoices VALUES ('acme', '2026-02-01 10:00+01', 24.00, true)")
        )
        connection.execute(
            text(
                """
                CREATE VIEW lapse_billing AS
                SELECT client AS account_id, 'default' AS plan, 'Acme' AS contact_name,
                       'acme@example.com' AS contact_email, 'Europe/Berlin' AS contact_timezone,
                       'EUR' AS currency, NULL::timestamptz AS created_at, vip AS exempt,
                       'web1' AS host, client AS system_user, '/srv/www/' || client AS docroot,
                       client || '.example.test' AS domains,
                       'postgresql:' || client || '_app' AS databases,
                       'INV-1' AS invoice_id, due AS invoice_due_at, total AS invoice_total,
                       NULL::numeric AS invoice_amount_due, 'Hosting' AS item_description,
                       total AS item_amount
                FROM invoices
                """
            )
        )
    engine.dispose()

    result = sql_source(url, "SELECT * FROM lapse_billing").fetch_all()

    assert result.errors == ()
    (acme,) = result.snapshots
    assert acme.exempt is True
    assert acme.oldest_due_at() == datetime(2026, 2, 1, 9, 0, tzinfo=UTC)
    assert acme.balance == Decimal("24.00")
    assert acme.services[0].databases[0].engine == "postgresql"
