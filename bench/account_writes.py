"""How long writing a sync batch's changed accounts takes, against the ORM's flush.

For each state database (an SQLite file and the lab's PostgreSQL) this fills the
accounts table with 2 x RUNS x BATCH rows, then, alternating which goes first,
loads BATCH of them (never the same twice) as the sync loads a batch (the snapshot
deferred), changes them as a reactivation does (state, counters, deadlines, the
snapshot and its digests) and writes them:

- baseline: the ORM's flush, which writes each versioned row in an UPDATE of its own;
- batched: `daemon.store.versioned_writes.write_changed` (one executemany per set of
  changed columns, the version checked by the row count), then the flush. On SQLite
  it leaves the rows to the flush, so there both sides are the ORM's (ratio 1).

Each side's time is the median over RUNS runs of the write alone (loading and
changing the rows are not timed). `ratio` is batched over baseline (lower is better).

Usage: .venv/bin/python bench/account_writes.py [--runs 7] [--batch 2000]
Ends with one line `RESULT sqlite_ratio=... sqlite_orm_ms=... sqlite_batched_ms=...
postgresql_ratio=... postgresql_orm_ms=... postgresql_batched_ms=... batch=...`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import Engine, insert, select
from sqlalchemy.orm import Session, defer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from daemon.store.db import open_engine
from daemon.store.models import Account, Base
from daemon.store.versioned_writes import write_changed
from tests.lab.services.postgres import start_postgres

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def fill(engine: Engine, accounts: int) -> None:
    """Create the schema and `accounts` overdue accounts."""
    Base.metadata.create_all(engine)
    rows = [
        {
            "id": f"acct-{number:07d}",
            "plan": "default",
            "state": "overdue",
            "reminders_sent": 2,
            "warnings_sent": 0,
            "clock_start": NOW - timedelta(days=20),
            "final_notice_at": NOW - timedelta(days=3),
            "suspend_at": NOW + timedelta(days=4),
            "next_wake_at": NOW + timedelta(days=4),
            "balance": Decimal("42.50"),
            "currency": "EUR",
            "snapshot": {"account_id": f"acct-{number:07d}", "balance": "42.50"},
            "snapshot_hash": "a" * 64,
            "billing_digest": "b" * 32,
            "first_seen_at": NOW - timedelta(days=90),
            "updated_at": NOW - timedelta(days=3),
            "version": 1,
        }
        for number in range(accounts)
    ]
    with engine.begin() as connection:
        connection.execute(insert(Account), rows)


def write_once(engine: Engine, first: int, batch: int, batched: bool, run: int) -> float:
    """Load `batch` accounts from number `first`, reactivate them, and return the seconds
    their write took (with write_changed when `batched`, else the ORM's flush alone)."""
    with Session(engine) as session, session.begin():
        ids = [f"acct-{number:07d}" for number in range(first, first + batch)]
        rows = session.scalars(
            select(Account).options(defer(Account.snapshot)).where(Account.id.in_(ids))
        ).all()
        for row in rows:
            row.state = "active"
            row.reminders_sent = 0
            row.clock_start = row.final_notice_at = row.suspend_at = None
            row.next_wake_at = None
            row.balance = Decimal("0")
            row.snapshot = {"account_id": row.id, "balance": "0.00", "run": run}
            row.snapshot_hash = f"{run:064d}"
            row.billing_digest = f"{run:032d}"
            row.updated_at = NOW
        started = time.perf_counter()
        if batched:
            write_changed(session, rows)
        session.flush()
        return time.perf_counter() - started


def measure(engine: Engine, runs: int, batch: int) -> tuple[float, float]:
    """Return the median seconds of the ORM's flush and of write_changed, each write on
    accounts no other write changed (the table holds 2 x runs x batch of them)."""
    times: dict[bool, list[float]] = {False: [], True: []}
    for run in range(runs):
        # Each side goes first in every other run.
        for batched in (run % 2 == 0, run % 2 == 1):
            first = (2 * run + batched) * batch
            times[batched].append(write_once(engine, first, batch, batched, run))
    return statistics.median(times[False]), statistics.median(times[True])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--batch", type=int, default=2000)
    args = parser.parse_args()
    figures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="lapse-bench-") as directory:
        work = Path(directory)
        work.chmod(0o755)  # the lab PostgreSQL runs as an unprivileged user
        postgres = start_postgres(work / "pg")
        try:
            urls = {
                "sqlite": f"sqlite:///{work / 'state.db'}",
                "postgresql": postgres.create_database("accounts"),
            }
            for name, url in urls.items():
                engine = open_engine(url)
                fill(engine, 2 * args.runs * args.batch)
                orm, batched = measure(engine, args.runs, args.batch)
                engine.dispose()
                print(f"{name}: ORM {orm * 1000:.0f} ms, batched {batched * 1000:.0f} ms")
                figures.append(
                    f"{name}_ratio={batched / orm:.3g} {name}_orm_ms={orm * 1000:.0f}"
                    f" {name}_batched_ms={batched * 1000:.0f}"
                )
        finally:
            postgres.stop()
    print(f"RESULT {' '.join(figures)} batch={args.batch}")


if __name__ == "__main__":
    main()
