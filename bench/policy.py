"""How fast Lapse reads and evaluates a large billing database, against a plain SELECT.

For each state database (SQLite, the lab's PostgreSQL, or both) this builds a billing
database of ACCOUNTS accounts (most paid up, the rest overdue at every stage of the
default policy, one row per open invoice line), in the same kind of database as the
state, then measures:

- baseline_s: a plain SQLAlchemy SELECT fetching the same rows (the floor: Lapse
  cannot read billing faster than the database hands it over);
- fetch_s: the `sql` billing source listing every account and reading each into a
  snapshot (validated), as a sync that finds every account changed does;
- eval_per_s: pure policy decisions per second over those snapshots;
- recalled: accounts whose rows the database returned scattered (PostgreSQL keeps
  no row order without ORDER BY), which the source reads apart, by their ids;
- first_sync_s: the first full sync into an empty state database (every account
  inserted, every due reminder and final notice composed, queued and delivered to
  the outbox): a one-off when Lapse is put in front of an existing customer base;
  first_deliver_s: the part of it spent delivering those notices;
- sync_s: the sync a day later, after CHANGED of the accounts changed in billing
  (half of them paid what they owed, half got an invoice due the day before), with
  that day's reminders, final notices, suspensions and reactivations written: the
  whole sync including writes, as it runs in production;
- idle_sync_s: a sync in which nothing changed, which is what most sync intervals are;
- first_cpu_s, sync_cpu_s, idle_cpu_s: the CPU seconds the syncing process spent in
  each of the three syncs (the database server's are not counted): steadier than the
  wall-clock figures on a machine that other work shares;
- first_gc_s, sync_gc_s, idle_gc_s: the seconds the cyclic garbage collector's passes
  took within each of the three syncs (each sync runs as `lapse run` runs it, with the
  collector spaced out, daemon.runtime.collector, unless --young-threshold names the
  young generation's threshold to run it with instead);
- ratio: sync_s / baseline_s; idle_ratio: idle_sync_s / baseline_s;
- rss_mb: the peak resident memory of the process running the three syncs (a fresh
  process, as the daemon is); rss_base_mb: the same process's resident memory once
  its parts are built, before the first sync (code and libraries); kb_per_account:
  what the syncs added to it, per account.

Usage: .venv/bin/python bench/policy.py [--accounts N] [--db sqlite|postgresql|both]
       [--changed SHARE] [--young-threshold N]
It prints one `RESULT db=... key=value ...` line per state database, ending with the
PostgreSQL one; docs/benchmarks.md records them.
"""

from __future__ import annotations

import argparse
import gc
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

from sqlalchemy import Column, Index, MetaData, String, Table, create_engine, insert, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from daemon.billing.flat import FLAT_COLUMNS
from daemon.billing.listing import Listed, Recalled, Refused, every_account
from daemon.billing.sql import SqlSource
from daemon.config.load import validate_config
from daemon.config.schema import PolicyConfig, SqlBilling
from daemon.domain.clock import VirtualClock
from daemon.lifecycle.report import SyncReport
from daemon.policy import LifecycleRecord, decide
from daemon.runtime import collector
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


def billing_table(metadata: MetaData) -> Table:
    """The bench's billing table: the flat columns, indexed by account as a billing
    system's tables are."""
    table = Table("billing_lines", metadata, *(Column(name, String) for name in FLAT_COLUMNS))
    Index("ix_billing_lines_account", table.c.account_id)
    return table


def build_billing_db(url: str, accounts: int) -> int:
    """Create and fill the billing table at `url`; returns the number of rows."""
    engine = create_engine(url)
    metadata = MetaData()
    table = billing_table(metadata)
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


def change_billing(url: str, accounts: int, share: float, now: datetime) -> tuple[int, int]:
    """Change `share` of the accounts at `url`: half of them, among those who owe, pay
    everything; the other half, among those who owed nothing, get an invoice due the
    day before `now`. Returns (payers, lapsed)."""
    overdue_every = round(1 / OVERDUE_SHARE)
    # Every `step`-th overdue (paid) account changes: together `share` of all accounts.
    step = max(1, round(1 / (overdue_every * share / 2)))
    payers = [f"acct{n:06d}" for n in range(0, accounts, overdue_every * step)]
    lapsed = [f"acct{n:06d}" for n in range(1, accounts, overdue_every * step)]
    blank = {column: "" for column in FLAT_COLUMNS if column.startswith(("invoice", "item"))}
    invoice = {
        "invoice_due_at": (now - timedelta(days=1)).isoformat(),
        "invoice_total": "24.00",
        "invoice_amount_due": "24.00",
        "item_description": "Hosting",
        "item_amount": "24.00",
    }
    engine = create_engine(url)
    table = billing_table(MetaData())
    account = table.c.account_id
    with engine.begin() as connection:
        if payers:
            domain = table.c.item_description == "Domain"
            connection.execute(table.delete().where(account.in_(payers), domain))
            connection.execute(table.update().where(account.in_(payers)).values(blank))
        for account_id in lapsed:
            values = invoice | {"invoice_id": f"INV-{account_id}-2"}
            connection.execute(table.update().where(account == account_id).values(values))
    engine.dispose()
    return len(payers), len(lapsed)


def timed(function: Callable[..., T], *args: Any) -> tuple[float, T]:
    """Call `function(*args)`; return (seconds, result)."""
    started = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - started, result


def run_case(
    name: str,
    billing_url: str,
    state_url: str,
    work: Path,
    accounts: int,
    changed: float,
    young_threshold: int | None,
) -> dict[str, float]:
    """Measure one state database; returns the figures named in the module docstring."""
    engine = create_engine(billing_url)

    def baseline() -> int:
        with engine.connect() as connection:
            return len(connection.execute(text(QUERY)).fetchall())

    baseline_s = min(timed(baseline)[0] for _ in range(3))
    engine.dispose()

    raw = {
        "state": {"url": state_url},
        "billing": {"type": "sql", "url": billing_url, "query": QUERY},
        "backup": {"store": {"type": "local", "path": str(work / "backups")}},
        "notices": {"notifier": {"type": "outbox", "path": str(work / f"outbox-{name}")}},
    }
    config = validate_config(raw, source="bench", base_dir=work)
    policy = config.policy_for("default")
    source = SqlSource(SqlBilling(type="sql", url=billing_url, query=QUERY))
    for _ in range(4):  # as a sync does: rows found scattered start the listing over
        fetch_s, eval_s, count, again = read_all(source, policy)
        if not again:
            break
    else:
        raise AssertionError("the billing rows came back scattered anew at every read")
    eval_per_s = count / eval_s
    recalled = len(source.apart)
    source.close()

    # The syncs run in a fresh process, as the daemon does, so the memory figure is
    # the daemon's and not this benchmark's.
    job = {
        "config": raw,
        "billing": billing_url,
        "accounts": accounts,
        "changed": changed,
        "young_threshold": young_threshold,
    }
    child = subprocess.run(
        [sys.executable, __file__, "--sync-only", json.dumps(job)],
        capture_output=True,
        text=True,
        check=True,
    )
    syncs = json.loads(child.stdout.splitlines()[-1])
    print(child.stderr.strip(), file=sys.stderr)
    rss_mb, rss_base_mb = syncs.pop("rss_mb"), syncs.pop("rss_base_mb")
    return {
        "baseline_s": baseline_s,
        "fetch_s": fetch_s,
        "eval_per_s": eval_per_s,
        "recalled": recalled,
        **syncs,
        "ratio": syncs["sync_s"] / baseline_s,
        "idle_ratio": syncs["idle_sync_s"] / baseline_s,
        "kb_per_account": (rss_mb - rss_base_mb) * 1024 / accounts,
        "rss_base_mb": rss_base_mb,
        "rss_mb": rss_mb,
    }


def read_all(source: SqlSource, policy: PolicyConfig) -> tuple[float, float, int, int]:
    """List every account of `source`, read each into a snapshot and decide it afresh.

    Returns the seconds spent listing and reading, the seconds spent deciding, the
    accounts read, and how many accounts the listing recalled (its rows came back
    scattered: the listing must be made again, as a sync starts over).
    """
    eval_s = 0.0
    count = 0
    started = time.perf_counter()
    for listing in every_account(source.stream()):
        if isinstance(listing, Recalled):
            return time.perf_counter() - started - eval_s, eval_s, count, len(listing.ids)
        if not isinstance(listing, Listed):
            raise AssertionError(f"billing listed {listing!r}")
        snapshot = listing.read()
        assert not isinstance(snapshot, Refused), snapshot
        deciding = time.perf_counter()
        decide(snapshot, LifecycleRecord(account_id=snapshot.account_id), policy, NOW)
        eval_s += time.perf_counter() - deciding
        count += 1
    return time.perf_counter() - started - eval_s, eval_s, count, 0


def run_syncs(job_json: str) -> None:
    """In a fresh process: the first sync, the next day's after the billing changes, and
    an idle one; print their times and this process's memory as one JSON line."""
    job = json.loads(job_json)
    config = validate_config(job["config"], source="bench", base_dir=Path.cwd())
    clock = VirtualClock(NOW)
    # As `lapse run` starts: the collector held while the app is built, then what is
    # alive frozen (daemon.runtime.collector).
    collector.hold()
    app = build_app(config, clock)
    collector.settle()
    threshold = job["young_threshold"] or collector.SYNC_YOUNG_THRESHOLD

    def sync() -> SyncReport:
        # As the daemon's scheduler runs each sync (daemon.runtime.collector).
        with collector.spaced(threshold):
            return app.lifecycle.sync()

    rss_base_mb = current_rss_mb()
    # What each sync spends delivering the notices it queued (to the outbox), apart.
    deliver = app.notices.deliver_pending
    delivering: list[float] = []

    def timed_delivery() -> int:
        seconds, count = timed(deliver)
        delivering.append(seconds)
        return count

    app.notices.deliver_pending = timed_delivery  # type: ignore[method-assign]
    collecting = CollectorTime()
    gc.callbacks.append(collecting.note)
    cpu = time.process_time()
    first_sync_s, first = timed(sync)
    first_cpu_s, cpu = time.process_time() - cpu, time.process_time()
    first_gc_s = collecting.take()
    tomorrow = NOW + timedelta(days=1)
    payers, lapsed = change_billing(job["billing"], job["accounts"], job["changed"], tomorrow)
    clock.set(tomorrow)
    cpu = time.process_time()
    collecting.take()
    sync_s, daily = timed(sync)
    sync_cpu_s, cpu = time.process_time() - cpu, time.process_time()
    sync_gc_s = collecting.take()
    idle_sync_s, idle = timed(sync)
    idle_cpu_s = time.process_time() - cpu
    idle_gc_s = collecting.take()
    gc.callbacks.remove(collecting.note)
    app.engine.dispose()
    print(
        f"first sync: {first.summary()}; next day ({payers} paid, {lapsed} lapsed): "
        f"{daily.summary()}; idle: {idle.summary()}",
        file=sys.stderr,
    )
    figures = {
        "first_sync_s": first_sync_s,
        "first_deliver_s": delivering[0],
        "sync_s": sync_s,
        "idle_sync_s": idle_sync_s,
        "first_cpu_s": first_cpu_s,
        "sync_cpu_s": sync_cpu_s,
        "idle_cpu_s": idle_cpu_s,
        "first_gc_s": first_gc_s,
        "sync_gc_s": sync_gc_s,
        "idle_gc_s": idle_gc_s,
        "rss_base_mb": rss_base_mb,
        "rss_mb": peak_rss_mb(),
    }
    print(json.dumps(figures))


class CollectorTime:
    """The seconds the garbage collector's passes took, summed from its callbacks."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.started = 0.0

    def note(self, phase: str, _info: dict[str, int]) -> None:
        """A gc callback: a pass starts or stops."""
        if phase == "start":
            self.started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self.started

    def take(self) -> float:
        """Return the seconds summed since the last call, and start again from zero."""
        seconds, self.seconds = self.seconds, 0.0
        return seconds


def peak_rss_mb() -> float:
    """This process's peak resident memory since it started (VmHWM).

    Not ru_maxrss: for a process started by fork and exec, the kernel carries the
    parent's memory at fork into it.
    """
    return _status_mb("VmHWM:")


def current_rss_mb() -> float:
    """This process's resident memory now (VmRSS)."""
    return _status_mb("VmRSS:")


def _status_mb(field: str) -> float:
    """A memory figure of /proc/self/status, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def main() -> None:
    """Run the cases asked for and print their RESULT lines."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--changed", type=float, default=0.01, metavar="SHARE")
    parser.add_argument(
        "--young-threshold",
        type=int,
        metavar="N",
        help="run each sync with the collector's young pass every N allocations",
    )
    parser.add_argument("--sync-only", metavar="JOB_JSON", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.young_threshold is not None and arguments.young_threshold < 1:
        parser.error(f"--young-threshold must be 1 or more, not {arguments.young_threshold}")
    configure_logging("warning", "json")  # one line per transition would swamp the figures
    if arguments.sync_only:
        run_syncs(arguments.sync_only)
        return
    accounts, changed = arguments.accounts, arguments.changed
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="lapse-bench-") as directory:
        work = Path(directory)
        work.chmod(0o755)  # the lab PostgreSQL runs as an unprivileged user
        if arguments.db in ("sqlite", "both"):
            billing_url = f"sqlite:///{work / 'billing.db'}"
            rows = build_billing_db(billing_url, accounts)
            print(f"billing: {accounts} accounts, {rows} rows", file=sys.stderr)
            state = f"sqlite:///{work / 'state.db'}"
            results["sqlite"] = run_case(
                "sqlite", billing_url, state, work, accounts, changed, arguments.young_threshold
            )
        if arguments.db in ("postgresql", "both"):
            postgres = start_postgres(work / "pg")
            try:
                pg_billing = postgres.create_database("billing")
                rows = build_billing_db(pg_billing, accounts)
                print(f"billing: {accounts} accounts, {rows} rows", file=sys.stderr)
                state = postgres.create_database("state")
                results["postgresql"] = run_case(
                    "postgresql",
                    pg_billing,
                    state,
                    work,
                    accounts,
                    changed,
                    arguments.young_threshold,
                )
            finally:
                postgres.stop()
    for db, figures in results.items():
        rss = " ".join(f"{key}={figures.pop(key):.0f}" for key in ("rss_base_mb", "rss_mb"))
        pairs = " ".join(f"{key}={value:.3g}" for key, value in figures.items())
        print(f"RESULT db={db} accounts={accounts} changed={changed:g} {pairs} {rss}")


if __name__ == "__main__":
    main()
