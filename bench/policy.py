"""How fast Lapse reads and evaluates a large billing database, against a plain SELECT.

For each state database (SQLite, then the lab's PostgreSQL) this builds a billing
database of ACCOUNTS accounts (most paid up, the rest overdue at every stage of the
default policy, one row per open invoice line), then measures:

- baseline_s: a plain SQLAlchemy SELECT fetching the same rows (the floor: Lapse
  cannot read billing faster than the database hands it over);
- fetch_s: the `sql` billing source reading and validating every row into snapshots;
- eval_per_s: pure policy decisions per second over those snapshots;
- first_sync_s: the first full sync into an empty state database (every account
  inserted, every due notice composed and written to the outbox);
- sync_s: a steady-state sync (nothing changed since the last one), which is what
  runs every sync interval;
- ratio: sync_s / baseline_s.

Usage: .venv/bin/python bench/policy.py [--accounts N]
The last line is `RESULT key=value ...`; docs/benchmarks.md records it.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Column, MetaData, String, Table, create_engine, insert, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from daemon.app import build_app
from daemon.billing.flat import FLAT_COLUMNS
from daemon.billing.sql import SqlSource
from daemon.clock import VirtualClock
from daemon.config.load import validate_config
from daemon.config.schema import SqlBilling
from daemon.policy import LifecycleRecord, decide
from tests.lab.services.postgres import PostgresServer

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
QUERY = "SELECT * FROM billing_lines"
# Days overdue for the share of accounts that owe money: every stage of the default policy.
OVERDUE_DAYS = (-5, 1, 4, 11, 18, 29, 37, 52, 70)
OVERDUE_SHARE = 0.15


def billing_rows(accounts: int) -> Iterator[dict[str, str]]:
    """Yield flat billing rows for `accounts` accounts: one per open invoice line, or one
    row with empty invoice columns for an account that owes nothing."""
    overdue_every = round(1 / OVERDUE_SHARE)
    for number in range(accounts):
        account_id = f"acct{number:06d}"
        base = {
            "account_id": account_id,
            "plan": "default",
            "contact_name": f"Client {number}",
            "contact_email": f"{account_id}@example.org",
            "contact_timezone": "Europe/Berlin",
            "currency": "EUR",
            "created_at": "2024-01-01T00:00:00+00:00",
            "exempt": "false",
            "host": "web1",
            "system_user": account_id,
            "docroot": f"/srv/www/{account_id}",
            "domains": f"{account_id}.example.org",
            "databases": f"mariadb:{account_id}:{account_id}",
        }
        empty = {column: "" for column in FLAT_COLUMNS if column.startswith(("invoice", "item"))}
        if number % overdue_every:
            yield base | empty
            continue
        days = OVERDUE_DAYS[(number // overdue_every) % len(OVERDUE_DAYS)]
        invoice = {
            "invoice_id": f"INV-{number}",
            "invoice_due_at": (NOW - timedelta(days=days)).isoformat(),
            "invoice_total": "24.00",
            "invoice_amount_due": "24.00",
        }
        yield base | invoice | {"item_description": "Hosting", "item_amount": "20.00"}
        yield base | invoice | {"item_description": "Domain", "item_amount": "4.00"}


def build_billing_db(url: str, accounts: int) -> int:
    """Create and fill the billing table at `url`; returns the number of rows."""
    engine = create_engine(url)
    metadata = MetaData()
    table = Table("billing_lines", metadata, *(Column(name, String) for name in FLAT_COLUMNS))
    metadata.drop_all(engine)
    metadata.create_all(engine)
    rows = list(billing_rows(accounts))
    with engine.begin() as connection:
        for start in range(0, len(rows), 10_000):
            connection.execute(insert(table), rows[start : start + 10_000])
    engine.dispose()
    return len(rows)


def timed(function, *args):  # type: ignore[no-untyped-def]
    """Call `function(*args)`; return (seconds, result)."""
    started = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - started, result


def run_case(name: str, billing_url: str, state_url: str, work: Path) -> dict[str, float]:
    """Measure one state database; returns the figures named in the module docstring."""
    engine = create_engine(billing_url)

    def baseline() -> int:
        with engine.connect() as connection:
            return len(connection.execute(text(QUERY)).fetchall())

    baseline_s = min(timed(baseline)[0] for _ in range(3))
    engine.dispose()

    source = SqlSource(SqlBilling(type="sql", url=billing_url, query=QUERY))
    fetch_s, result = timed(source.fetch_all)
    assert not result.errors, result.errors[:3]

    config = validate_config(
        {
            "state": {"url": state_url},
            "billing": {"type": "sql", "url": billing_url, "query": QUERY},
            "backup": {"store": {"type": "local", "path": str(work / "backups")}},
            "notices": {"notifier": {"type": "outbox", "path": str(work / f"outbox-{name}")}},
        },
        source="bench",
        base_dir=work,
    )
    policy = config.policy_for("default")
    started = time.perf_counter()
    for snapshot in result.snapshots:
        decide(snapshot, LifecycleRecord(account_id=snapshot.account_id), policy, NOW)
    eval_per_s = len(result.snapshots) / (time.perf_counter() - started)

    app = build_app(config, VirtualClock(NOW))
    first_sync_s, first = timed(app.lifecycle.sync)
    sync_s, _ = timed(app.lifecycle.sync)
    app.engine.dispose()
    print(f"{name}: {first.summary()}", file=sys.stderr)
    return {
        "baseline_s": baseline_s,
        "fetch_s": fetch_s,
        "eval_per_s": eval_per_s,
        "first_sync_s": first_sync_s,
        "sync_s": sync_s,
        "ratio": sync_s / baseline_s,
    }


def main() -> None:
    """Run both cases and print the RESULT line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    arguments = parser.parse_args()
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="lapse-bench-") as directory:
        work = Path(directory)
        billing_url = f"sqlite:///{work / 'billing.db'}"
        rows = build_billing_db(billing_url, arguments.accounts)
        print(f"billing: {arguments.accounts} accounts, {rows} rows", file=sys.stderr)
        sqlite = run_case("sqlite", billing_url, f"sqlite:///{work / 'state.db'}", work)
        figures |= {f"sqlite_{key}": value for key, value in sqlite.items()}
        with PostgresServer(work / "pg") as postgres:
            pg_billing = postgres.create_database("billing")
            build_billing_db(pg_billing, arguments.accounts)
            pg = run_case("postgresql", pg_billing, postgres.create_database("state"), work)
        figures |= {f"pg_{key}": value for key, value in pg.items()}
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    pairs = " ".join(f"{key}={value:.3g}" for key, value in figures.items())
    print(f"RESULT accounts={arguments.accounts} {pairs} rss_mb={rss_mb:.0f}")


if __name__ == "__main__":
    main()
