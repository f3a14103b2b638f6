"""The month-end storm: N accounts lapse together on two lab hosts; K of them pay mid-storm.

N accounts (default 40) with S MB sites (default 100) spread over two lab sshd hosts
are suspended at the same moment by the shipped nginx-linux playbook (a verified
backup over SSH, the maintenance page, the Unix user's logins revoked), run by the
daemon's worker pool in this process on the real clock. K (default 5) accounts
already suspended pay PAY_AFTER seconds in: their payment is recorded and handed to
the scheduler as the webhook listener does, and the clock stops when the account is
active with its unsuspend done. The same storm is then run with `workers = 1`.

Prints paid_to_online_p95_s (target under 5 s), storm_makespan_s, the workers=1
makespan and the ratio, the most phases seen at once per host (never above its
max_parallel) and the phases run twice (must be 0).

`--latency`: remote latency in place of bytes: every phase is one `run` step that
sleeps SLEEP s on the host (200 accounts by default); the makespan is compared with
N x SLEEP / workers (target within 1.2x), hosts allowing `workers` phases each.

`--daemons 2`: the storm on a lab PostgreSQL, run by two `lapse run` processes; one
is killed with SIGKILL in the middle. Every phase must complete exactly once, and the
killed daemon's phases resume within the lease + 5 s.

Each mode ends with one line `RESULT key=value ...`.

Usage: .venv/bin/python bench/storm.py [--accounts 40] [--site-mb 100] [--payers 5]
       .venv/bin/python bench/storm.py --latency [--accounts 200] [--sleep 2]
       .venv/bin/python bench/storm.py --daemons 2 [--accounts 40] [--site-mb 100]
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from daemon.domain.states import ActionStatus, State
from daemon.runtime.app import App
from daemon.runtime.logs import configure_logging
from daemon.runtime.phase_pool import PhasePool
from daemon.runtime.scheduler import LapseScheduler
from daemon.store.models import Account, PlaybookRun, ScheduledAction
from daemon.store.payment_events import record_payment
from tests.e2e.daemon_process import start_daemon, stop_daemon
from tests.lab.services.postgres import PostgresServer, start_postgres
from tests.lab.services.sshd import SSHServer, start_sshd
from tests.lab.storm_scene import Storm, prepare, write_storm

PAY_AFTER_S = 5.0
TIMEOUT_S = 3600


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=None)
    parser.add_argument("--site-mb", type=float, default=100.0)
    parser.add_argument("--payers", type=int, default=5)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--max-parallel", type=int, default=2)
    parser.add_argument("--latency", action="store_true")
    parser.add_argument("--sleep", type=float, default=2.0)
    parser.add_argument("--daemons", type=int, default=1)
    parser.add_argument("--lease", default="10s")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args()
    configure_logging(level=args.log_level, fmt="json")
    workdir = Path(tempfile.mkdtemp(prefix="lapse-storm-", dir="/tmp"))
    workdir.chmod(0o755)
    sshds = [start_sshd(workdir / "sshd1"), start_sshd(workdir / "sshd2")]
    postgres: PostgresServer | None = None
    try:
        if args.daemons > 1:
            postgres = start_postgres(workdir / "pg")
            daemons_storm(args, workdir, sshds, postgres)
        elif args.latency:
            latency_storm(args, workdir, sshds)
        else:
            payment_storm(args, workdir, sshds)
    finally:
        for sshd in sshds:
            sshd.stop()
        if postgres is not None:
            postgres.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def payment_storm(args: argparse.Namespace, workdir: Path, sshds: list[SSHServer]) -> None:
    accounts = args.accounts or 40
    latencies, makespan, peaks, all_peaks, twice = run_storm(
        workdir / "pool", sshds, accounts, args, workers=args.workers, payers=args.payers
    )
    _, serial, _, _, serial_twice = run_storm(
        workdir / "serial", sshds, accounts, args, workers=1, payers=0
    )
    cuts = (
        statistics.quantiles(latencies, n=20, method="inclusive")
        if len(latencies) > 1
        else latencies * 19
    )
    p95 = cuts[18] if len(latencies) > 1 else latencies[0]
    print(f"paid to online: {', '.join(f'{x:.2f}' for x in latencies)} s")
    print(
        f"RESULT paid_to_online_p95_s={p95:.2f} storm_makespan_s={makespan:.1f} "
        f"workers1_makespan_s={serial:.1f} ratio={serial / makespan:.2f} "
        f"max_per_host={_peaks(peaks)} max_parallel={args.max_parallel} "
        f"max_per_host_with_unsuspend={_peaks(all_peaks)} "
        f"phases_run_twice={twice + serial_twice} accounts={accounts} site_mb={args.site_mb:g} "
        f"payers={args.payers} workers={args.workers}"
    )


def latency_storm(args: argparse.Namespace, workdir: Path, sshds: list[SSHServer]) -> None:
    accounts = args.accounts or 200
    storm = write_storm(
        workdir / "latency",
        sshds,
        f"sqlite:///{workdir / 'latency.db'}",
        accounts=accounts,
        sleep_s=args.sleep,
        workers=args.workers,
        max_parallel=args.workers,
        # The sleep playbook needs no root: as root, this machine's ~/.bashrc (pyenv)
        # would cost every SSH command 0.1 s of the cores the daemon is measured on.
        unprivileged=True,
    )
    app = storm.app()
    ids = prepare(storm, app)
    # One phase alone first: what a phase costs here besides its sleep (SSH sessions,
    # the tree check, records), so the storm's concurrency can be told from that cost.
    alone = time.monotonic()
    app.runner.execute(ids.pop())
    single = time.monotonic() - alone
    accounts -= 1
    started = time.monotonic()
    pool = PhasePool(app.runner, app.config.hosts, workers=args.workers)
    pool.start()
    pool.kick()
    _wait_done(app, ids)
    makespan = time.monotonic() - started
    pool.stop(30)
    ideal = accounts * args.sleep / args.workers
    measured = accounts * single / args.workers
    peaks = _host_peaks(app)
    print(
        f"RESULT latency_makespan_s={makespan:.1f} ideal_s={ideal:.1f} "
        f"ratio_to_ideal={makespan / ideal:.2f} single_phase_s={single:.2f} "
        f"ideal_from_single_s={measured:.1f} ratio_to_single={makespan / measured:.2f} "
        f"max_per_host={_peaks(peaks)} "
        f"phases_run_twice={_run_twice(app)} accounts={accounts} sleep_s={args.sleep:g} "
        f"workers={args.workers}"
    )


def run_storm(
    root: Path,
    sshds: list[SSHServer],
    accounts: int,
    args: argparse.Namespace,
    *,
    workers: int,
    payers: int,
) -> tuple[list[float], float, dict[str, int], dict[str, int], int]:
    """One storm in this process; returns the payers' paid-to-online seconds, the
    makespan of the other accounts' suspensions, the peak per host without and with
    unsuspends, and the phases run twice."""
    storm = write_storm(
        root,
        sshds,
        f"sqlite:///{root.parent / (root.name + '.db')}",
        accounts=accounts + payers,
        site_mb=args.site_mb,
        playbook="nginx-linux",
        workers=workers,
        max_parallel=args.max_parallel,
    )
    try:
        app = storm.app()
        ids = prepare(storm, app)
        paying = list(storm.accounts)[accounts:]
        with app.sessions.begin() as session:  # the payers' suspensions ran days ago
            for action in session.scalars(
                select(ScheduledAction).where(ScheduledAction.account_id.in_(paying))
            ):
                action.status = ActionStatus.DONE
        storm_ids = [i for i in ids if i not in _ids_of(app, paying)]
        pool = PhasePool(app.runner, app.config.hosts, workers=workers)
        scheduler = LapseScheduler(
            app.engine, app.lifecycle, timedelta(hours=1), app.runner, pool=pool
        )
        pool.after_phase = scheduler.payments_due
        started = time.monotonic()
        pool.start()
        scheduler.start(sync_now=False)
        latencies = []
        if paying:
            time.sleep(max(0.0, PAY_AFTER_S - (time.monotonic() - started)))
            latencies = _pay(storm, app, scheduler, paying)
        _wait_done(app, storm_ids)
        makespan = time.monotonic() - started
        scheduler.shutdown()
        pool.stop(30)
        print(f"workers={workers}: {accounts} suspensions in {makespan:.1f} s", file=sys.stderr)
        return (
            latencies,
            makespan,
            _host_peaks(app),
            _host_peaks(app, unsuspends=True),
            _run_twice(app),
        )
    finally:
        storm.remove_users()


def _pay(storm: Storm, app: App, scheduler: LapseScheduler, paying: list[str]) -> list[float]:
    """Pay for `paying` now; return each one's seconds until it is active again with its
    unsuspend done."""
    storm.pay(paying)
    paid_at = time.monotonic()
    for account_id in paying:
        with app.sessions.begin() as session:
            key = f"generic:storm-{account_id}"
            record_payment(session, key, account_id, "generic", app.clock(), known=True)
        scheduler.wake_now(account_id)
    online: dict[str, float] = {}
    while len(online) < len(paying) and time.monotonic() - paid_at < TIMEOUT_S:
        for account_id in paying:
            if account_id not in online and _online(app, account_id):
                online[account_id] = time.monotonic() - paid_at
        time.sleep(0.05)
    return [online[a] for a in paying if a in online]


def _online(app: App, account_id: str) -> bool:
    with app.sessions() as session:
        state = session.scalar(select(Account.state).where(Account.id == account_id))
        unsuspend = session.scalar(
            select(ScheduledAction.status).where(
                ScheduledAction.account_id == account_id, ScheduledAction.name == "unsuspend"
            )
        )
    return state == State.ACTIVE.value and unsuspend == ActionStatus.DONE


def daemons_storm(
    args: argparse.Namespace, workdir: Path, sshds: list[SSHServer], postgres: PostgresServer
) -> None:
    accounts = args.accounts or 40
    url = postgres.create_database("lapse_storm")
    storm = write_storm(
        workdir / "daemons",
        sshds,
        url,
        accounts=accounts,
        site_mb=args.site_mb,
        playbook="nginx-linux",
        workers=args.workers,
        max_parallel=args.max_parallel,
        lease=args.lease,
    )
    lease_s = float(args.lease.rstrip("s"))
    try:
        app = storm.app()
        ids = prepare(storm, app)
        logs = [workdir / f"daemon{n}.log" for n in range(args.daemons)]
        started = time.monotonic()
        daemons = [start_daemon(storm.config, log) for log in logs]
        try:
            while _done_count(app, ids) < len(ids) // 2:
                time.sleep(0.2)
            victim = daemons[0]
            held = _held_by(app, victim.pid)
            victim.send_signal(signal.SIGKILL)
            victim.wait(10)
            killed_at = time.monotonic()
            while _held_by(app, victim.pid) and time.monotonic() - killed_at < TIMEOUT_S:
                time.sleep(0.1)
            resumed_after = time.monotonic() - killed_at
            _wait_done(app, ids)
            makespan = time.monotonic() - started
        finally:
            for process in daemons:
                stop_daemon(process, signal.SIGTERM if process.poll() is None else signal.SIGKILL)
        print(
            f"RESULT daemons={args.daemons} storm_makespan_s={makespan:.1f} "
            f"killed_daemon_phases={held} resumed_after_s={resumed_after:.1f} "
            f"lease_plus_5_s={lease_s + 5:g} phases_done={_done_count(app, ids)}/{len(ids)} "
            f"phases_run_twice={_run_twice(app)} max_per_host={_peaks(_host_peaks(app))} "
            f"accounts={accounts} site_mb={args.site_mb:g} workers={args.workers}"
        )
    finally:
        storm.remove_users()


def _ids_of(app: App, accounts: list[str]) -> set[int]:
    with app.sessions() as session:
        return set(
            session.scalars(
                select(ScheduledAction.id).where(ScheduledAction.account_id.in_(accounts))
            )
        )


def _held_by(app: App, pid: int) -> int:
    """How many running phases the process `pid` holds."""
    with app.sessions() as session:
        holders = session.scalars(
            select(ScheduledAction.claimed_by).where(ScheduledAction.status == ActionStatus.RUNNING)
        ).all()
    return sum(1 for holder in holders if holder and holder.split(":")[1] == str(pid))


def _done_count(app: App, ids: list[int]) -> int:
    with app.sessions() as session:
        return int(
            session.scalar(
                select(func.count()).where(
                    ScheduledAction.id.in_(ids), ScheduledAction.status == ActionStatus.DONE
                )
            )
            or 0
        )


def _wait_done(app: App, ids: list[int]) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        with app.sessions() as session:
            statuses = set(
                session.scalars(select(ScheduledAction.status).where(ScheduledAction.id.in_(ids)))
            )
        if statuses <= {ActionStatus.DONE, ActionStatus.FAILED, ActionStatus.CANCELLED}:
            if statuses != {ActionStatus.DONE}:
                raise RuntimeError(f"the storm ended with phases {sorted(statuses)}")
            return
        time.sleep(0.2)
    raise RuntimeError("the storm did not end")


def _host_peaks(app: App, *, unsuspends: bool = False) -> dict[str, int]:
    """The most playbook runs seen at once on each host (from the runs' start and end):
    without unsuspends, whose own slot beyond `max_parallel` the picker keeps
    (daemon.playbooks.picking.UNSUSPEND_HEADROOM), unless `unsuspends`."""
    spans: dict[str, list[tuple[float, int]]] = defaultdict(list)
    with app.sessions() as session:
        for host, phase, start, end in session.execute(
            select(
                PlaybookRun.host,
                PlaybookRun.phase,
                PlaybookRun.started_at,
                PlaybookRun.finished_at,
            )
        ):
            if phase == "unsuspend" and not unsuspends:
                continue
            finish = end.timestamp() if end else math.inf
            spans[host] += [(start.timestamp(), 1), (finish, -1)]
    peaks = {}
    for host, edges in spans.items():
        level = peak = 0
        for _, step in sorted(edges, key=lambda edge: (edge[0], edge[1])):
            level += step
            peak = max(peak, level)
        peaks[host] = peak
    return peaks


def _run_twice(app: App) -> int:
    """Phases with more than one finished run on a host (a phase run twice)."""
    with app.sessions() as session:
        rows = session.execute(
            select(PlaybookRun.action_id, PlaybookRun.host, func.count())
            .where(PlaybookRun.status == "done")
            .group_by(PlaybookRun.action_id, PlaybookRun.host)
        ).all()
    return sum(1 for _, _, count in rows if count > 1)


def _peaks(peaks: dict[str, int]) -> str:
    return json.dumps(dict(sorted(peaks.items())), separators=(",", ":"))


if __name__ == "__main__":
    main()
