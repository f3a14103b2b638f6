"""How long a paid client waits for their site: signed payment webhook to HTTP 200.

A hosting account lives on the lab's real servers (OpenSSH sshd, nginx, MariaDB,
PostgreSQL): a Unix user, an nginx vhost, two databases. The daemon's scheduler
and HTTP listener run in this process on the real clock, as `lapse run` runs
them. Each run:

1. (not timed) the account owes again and is suspended by the shipped
   nginx-linux playbook: verified backup, maintenance page (503), logins revoked;
2. (timed) billing records the payment and a signed generic webhook is POSTed;
   the clock stops when the site serves its original page again, after the
   unsuspend phase restored the vhost, logins and database users.

It prints p50 and p95 over RUNS runs (target: p95 under 5 s) and ends with one line
`RESULT p50_s=... p95_s=... runs=...`.

Usage: .venv/bin/python bench/reactivation.py [--runs 50]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from daemon.config.schema import WebhooksConfig
from daemon.config.secrets import SecretRef
from daemon.domain.states import State
from daemon.runtime.http.server import LapseHTTP
from daemon.runtime.http.signatures import sign_hmac
from daemon.runtime.logs import configure_logging
from daemon.runtime.scheduler import LapseScheduler
from daemon.runtime.service import http_listener
from daemon.store.models import ScheduledAction
from tests.lab.playbook_scene import (
    ORIGINAL_PAGE,
    PORTAL_TOKEN,
    Scene,
    build_scene,
    serve_portal,
)
from tests.lab.services.mariadb import start_mariadb
from tests.lab.services.nginx import start_nginx
from tests.lab.services.postgres import start_postgres
from tests.lab.services.sshd import start_sshd

SECRET = "bench-webhook-secret"  # noqa: S105 - a secret for a throwaway listener
PAGE_TIMEOUT_S = 60


class Stoppable(Protocol):
    def stop(self) -> None: ...


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--log-level", default="warning", help="the daemon's log level")
    args = parser.parse_args()
    if args.runs < 2:
        parser.error("--runs must be at least 2 for percentiles")
    configure_logging(level=args.log_level, fmt="json")
    os.environ["LAPSE_PORTAL_TOKEN"] = PORTAL_TOKEN
    # Short (unix socket paths) and traversable by the servers' unprivileged users.
    workdir = Path(tempfile.mkdtemp(prefix="lapse-bench-", dir="/tmp"))
    workdir.chmod(0o755)
    servers: list[Stoppable] = [
        sshd := start_sshd(workdir / "sshd"),
        nginx := start_nginx(workdir / "nginx"),
        mariadb := start_mariadb(workdir / "mariadb"),
        postgres := start_postgres(workdir / "postgres"),
    ]
    latencies: list[float] = []
    try:
        with (
            serve_portal() as portal,
            build_scene(workdir / "scene", sshd, nginx, mariadb, postgres, portal) as scene,
        ):
            latencies = measure(scene, workdir, args.runs)
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    cuts = statistics.quantiles(latencies, n=20, method="inclusive")
    p50, p95 = statistics.median(latencies), cuts[18]
    print(f"webhook to 200 over {len(latencies)} runs: p50 {p50:.2f} s, p95 {p95:.2f} s")
    print(f"RESULT p50_s={p50:.2f} p95_s={p95:.2f} runs={len(latencies)}")


def measure(scene: Scene, workdir: Path, runs: int) -> list[float]:
    """Suspend and pay `runs` times; return each webhook-to-200 latency in seconds."""
    secret_file = workdir / "webhook-secret"
    secret_file.write_text(SECRET)
    hooks = WebhooksConfig(hmac_secret=SecretRef(file=secret_file))
    object.__setattr__(scene.app.config, "webhooks", hooks)
    # Start paid up, on the real clock: each run then owes, is suspended, and pays.
    scene.clock.set(datetime.now(UTC))
    scene.pay()
    scene.app.lifecycle.sync()
    scheduler = LapseScheduler(
        scene.app.engine, scene.app.lifecycle, timedelta(hours=1), scene.app.runner
    )
    scheduler.start(sync_now=False)
    listener = http_listener(scene.app, scheduler, "127.0.0.1:0")
    listener.start()
    latencies = []
    try:
        for run in range(1, runs + 1):
            suspend(scene)
            latencies.append(pay_and_wait(scene, listener, f"evt-{run}"))
            print(f"run {run}: {latencies[-1]:.2f} s", file=sys.stderr, flush=True)
    finally:
        listener.stop()
        scheduler.shutdown()
    return latencies


def suspend(scene: Scene) -> None:
    """Make the account owe and run the playbook's suspend phase; wait for the 503."""
    scene.clock.set(datetime.now(UTC))
    scene.account["balance"] = "49.90"
    scene.account["invoices"] = [
        {"id": "INV-77", "due_at": "2026-01-01T00:00:00+00:00", "total": "49.90", "items": []}
    ]
    scene.billing_path.write_text(json.dumps({"accounts": [scene.account]}))
    app = scene.app
    # The lifecycle reaches suspension only after weeks of notices; the bench puts the
    # account there directly and runs the same suspend phase the lifecycle queues.
    app.lifecycle.mark(scene.account_id, State.SUSPENDED, "bench: suspended", "bench")
    now = scene.clock()
    with app.sessions.begin() as session:
        session.add(
            ScheduledAction(
                account_id=scene.account_id,
                kind="playbook",
                name="suspend",
                status="pending",
                due_at=now,
                created_at=now,
                updated_at=now,
                attempts=0,
            )
        )
    outcomes = app.runner.run_queued(scene.account_id)
    if outcomes != [("suspend", "done")] or scene.get().status_code != 503:
        raise RuntimeError(f"the suspension did not take: {outcomes}")


def pay_and_wait(scene: Scene, listener: LapseHTTP, event_id: str) -> float:
    """Record the payment, POST its signed event, and time until the original page."""
    scene.clock.set(datetime.now(UTC))
    started = time.perf_counter()
    scene.pay()
    body = json.dumps(
        {"id": event_id, "account_id": scene.account_id, "at": datetime.now(UTC).isoformat()}
    ).encode()
    answer = httpx.post(
        f"http://127.0.0.1:{listener.port}/webhooks/generic",
        content=body,
        headers={"X-Lapse-Signature": sign_hmac(body, SECRET)},
        timeout=10,
    )
    if answer.status_code != 202:
        raise RuntimeError(f"the listener answered {answer.status_code}: {answer.text}")
    while time.perf_counter() - started < PAGE_TIMEOUT_S:
        page = scene.get()
        if page.status_code == 200 and page.text == ORIGINAL_PAGE:
            return time.perf_counter() - started
        time.sleep(0.05)
    raise RuntimeError(f"the site was not back {PAGE_TIMEOUT_S} s after the payment event")


if __name__ == "__main__":
    main()
