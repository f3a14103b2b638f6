"""How fast Lapse reads and evaluates a large billing database, against a plain SELECT.

For each state database (SQLite, then the lab's PostgreSQL) this builds a billing
database of ACCOUNTS accounts (most paid up, the rest overdue at every stage of the
default policy, one row per open invoice line), then measures:

- baseline_s: a plain SQLAlchemy SELECT fetching the same rows (the floor: Lapse
  cannot read billing faster than the database hands it over);
- fetch_s: the `sql` billing source reading and validating every row into snapshots;
- eval_per_s: pure policy decisions per second over those snapshots;
- first_sync_s: the first full sync into an empty state database (every account
  inserted, every due reminder and final notice composed and queued): a one-off
  when Lapse is put in front of an existing customer base;
- sync_s: the sync a day later, with that day's reminders, final notices and
  suspensions written: the whole sync including writes, as it runs in production;
- idle_sync_s: a sync in which nothing changed, which is what most sync intervals are;
- ratio: sync_s / baseline_s;
- rss_mb: the peak resident memory of the process running the three syncs (a fresh
  process, as the daemon is).

Usage: .venv/bin/python bench/policy.py [--accounts N]
It prints one `RESULT db=... key=value ...` line per state database, ending with the
PostgreSQL one; docs/benchmarks.md records them.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Column, MetaData, String, Table, create_engine, insert, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from daemon.billing.flat import FLAT_COLUMNS
from daemon.billing.sql import SqlSource
from daemon.config.load import validate_config
from daemon.config.schema import SqlBilling
from daemon.domain.clock import VirtualClock
from daemon.policy import LifecycleRecord, decide
from daemon.runtime.app import build_app
from daemon.runtime.logs import configure_logging
from tests.lab.services.postgres import start_postgres

T = TypeVar("T")
NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
QUERY = "SELECT * FROM billing_lines"
# Accounts that owe money are spread evenly from 5 days before their due date to 70 days
# after it, so every stage of the default policy is populated and every day some cross
# a deadline.
OVERDUE_SPREAD = range(-5, 70)
# A twentieth of the customer base in dunning at any time is a bad month for a host.
OVERDUE_SHARE = 0.05


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
        days = OVERDUE_SPREAD[(number // overdue_every) % len(OVERDUE_SPREAD)]
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
    count = 0
    rows = billing_rows(accounts)
    with engine.begin() as connection:
        # In batches: the bench must not hold the whole table itself, or its own lists
        # would dominate the memory figure.
        while batch := list(itertools.islice(rows, 10_000)):
            connection.execute(insert(table), batch)
            count += len(batch)
    engine.dispose()
    return count


def timed(function: Callable[..., T], *args: Any) -> tuple[float, T]:
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

    raw = {
        "state": {"url": state_url},
        "billing": {"type": "sql", "url": billing_url, "query": QUERY},
        "backup": {"store": {"type": "local", "path": str(work / "backups")}},
        "notices": {"notifier": {"type": "outbox", "path": str(work / f"outbox-{name}")}},
    }
    config = validate_config(raw, source="bench", base_dir=work)
    policy = config.policy_for("default")
    started = time.perf_counter()
    for snapshot in result.snapshots:
        decide(snapshot, LifecycleRecord(account_id=snapshot.account_id), policy, NOW)
    eval_per_s = len(result.snapshots) / (time.perf_counter() - started)
    source.close()
    del result, source  # the daemon holds one sync's snapshots, not two

    # The syncs run in a fresh process, as the daemon does, so the memory figure is
    # the daemon's and not this benchmark's lists.
    child = subprocess.run(
        [sys.executable, __file__, "--sync-only", json.dumps(raw)],
        capture_output=True,
        text=True,
        check=True,
    )
    syncs = json.loads(child.stdout.splitlines()[-1])
    print(child.stderr.strip(), file=sys.stderr)
    return {
        "rss_mb": syncs.pop("rss_mb"),
        "baseline_s": baseline_s,
        "fetch_s": fetch_s,
        "eval_per_s": eval_per_s,
        **syncs,
        "ratio": syncs["sync_s"] / baseline_s,
    }


def run_syncs(raw_config: str) -> None:
    """In a fresh process: the first sync, the next day's, and an idle one; print their
    times and this process's peak resident memory as one JSON line."""
    config = validate_config(json.loads(raw_config), source="bench", base_dir=Path.cwd())
    clock = VirtualClock(NOW)
    app = build_app(config, clock)
    first_sync_s, first = timed(app.lifecycle.sync)
    clock.set(NOW + timedelta(days=1))
    sync_s, daily = timed(app.lifecycle.sync)
    idle_sync_s, _ = timed(app.lifecycle.sync)
    app.engine.dispose()
    print(f"first sync: {first.summary()}; next day: {daily.summary()}", file=sys.stderr)
    figures = {
        "first_sync_s": first_sync_s,
        "sync_s": sync_s,
        "idle_sync_s": idle_sync_s,
        "rss_mb": peak_rss_mb(),
    }
    print(json.dumps(figures))


def peak_rss_mb() -> float:
    """This process's peak resident memory since it started (VmHWM).

    Not ru_maxrss: for a process started by fork and exec, the kernel carries the
    parent's memory at fork into it.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def main() -> None:
    """Run both cases and print the RESULT line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--sync-only", metavar="CONFIG_JSON", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    configure_logging("warning", "json")  # one line per transition would swamp the figures
    if arguments.sync_only:
        run_syncs(arguments.sync_only)
        return
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="lapse-bench-") as directory:
        work = Path(directory)
        work.chmod(0o755)  # the lab PostgreSQL runs as an unprivileged user
        billing_url = f"sqlite:///{work / 'billing.db'}"
        rows = build_billing_db(billing_url, arguments.accounts)
        print(f"billing: {arguments.accounts} accounts, {rows} rows", file=sys.stderr)
        sqlite = run_case("sqlite", billing_url, f"sqlite:///{work / 'state.db'}", work)
        results["sqlite"] = sqlite
        postgres = start_postgres(work / "pg")
        try:
            pg_billing = postgres.create_database("billing")
            build_billing_db(pg_billing, arguments.accounts)
            pg = run_case("postgresql", pg_billing, postgres.create_database("state"), work)
        finally:
            postgres.stop()
        results["postgresql"] = pg
    for db, figures in results.items():
        rss_mb = figures.pop("rss_mb")
        pairs = " ".join(f"{key}={value:.3g}" for key, value in figures.items())
        print(f"RESULT db={db} accounts={arguments.accounts} {pairs} rss_mb={rss_mb:.0f}")


if __name__ == "__main__":
    main()
