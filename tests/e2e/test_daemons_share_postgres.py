"""Several `lapse run` processes on one PostgreSQL state database share the work.

Real daemons, real SIGKILLs: one leads (the advisory lock) and another takes over
when it dies; phases are claimed under leases, and a killed daemon's phases are
resumed by another from the step they reached; each notice is sent once.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from daemon.domain.states import ActionStatus
from daemon.notices.delivery.base import TemporaryDeliveryError
from daemon.store.models import Correspondence, DaemonBeat, ScheduledAction
from tests.e2e.daemon_process import lapse, start_daemon, stop_daemon, wait_for
from tests.lab.services.postgres import PostgresServer
from tests.lab.services.smtp import SMTPServer
from tests.lab.services.sshd import SSHServer
from tests.lab.storm_scene import Storm, intervals, most_at_once, prepare, write_storm


@pytest.fixture
def pg_url(postgres: PostgresServer) -> str:
    url: str = postgres.create_database(f"lapse_{uuid.uuid4().hex[:12]}")
    return url


@pytest.fixture
def daemons() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        stop_daemon(process, signal.SIGKILL)


def _beats(storm: Storm) -> list[DaemonBeat]:
    app = storm.app()
    try:
        with app.sessions() as session:
            return list(session.scalars(select(DaemonBeat)))
    finally:
        app.engine.dispose()


def _leader_pid(storm: Storm) -> int | None:
    leaders = [beat.pid for beat in _beats(storm) if beat.leader]
    return leaders[0] if len(leaders) == 1 else None


def test_one_leads_another_takes_over_when_it_is_killed(
    tmp_path: Path, sshd: SSHServer, pg_url: str, daemons: list[subprocess.Popen[bytes]]
) -> None:
    storm = write_storm(tmp_path, [sshd], pg_url, accounts=2, lease="3s")
    app = storm.app()
    prepare(storm, app, phase="verify")
    app.engine.dispose()
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    daemons.extend(start_daemon(storm.config, log) for log in logs)
    wait_for(lambda: len(_beats(storm)) == 2, 60, "two daemons' heartbeats")
    wait_for(lambda: _leader_pid(storm) is not None, 30, "a leader")
    leader = _leader_pid(storm)
    assert leader in {process.pid for process in daemons}
    wait_for(lambda: any("billing sync done" in log.read_text() for log in logs), 60, "a sync")
    time.sleep(2)
    assert sum("billing sync done" in log.read_text() for log in logs) == 1  # the leader's

    # `--once` never runs beside a leader; it names the holder.
    once = lapse("run", "--once", "-c", str(storm.config))
    assert once.returncode == 1 and "is in use by another lapse run" in once.stderr
    assert f"pid={leader}" in once.stderr

    status = lapse("status", "--json", "-c", str(storm.config))
    assert status.returncode == 0, status.stderr
    shown = json.loads(status.stdout)["queue"]
    assert len(shown["daemons"]) == 2 and shown["leader"] is not None

    [killed] = [process for process in daemons if process.pid == leader]
    [survivor] = [process for process in daemons if process.pid != leader]
    killed.send_signal(signal.SIGKILL)
    killed.wait(10)
    at = time.monotonic()
    wait_for(
        lambda: any(b.pid == survivor.pid and b.leader for b in _beats(storm)),
        20,
        "the survivor to lead",
    )
    # The lock went with the killed daemon's connection; the survivor tries every second.
    assert time.monotonic() - at < 3 + 5
    survivor_log = logs[daemons.index(survivor)]
    wait_for(lambda: "billing sync done" in survivor_log.read_text(), 30, "the survivor's sync")
    assert "leading: syncs" in survivor_log.read_text()
    assert stop_daemon(survivor) == 0


def test_a_killed_daemons_phases_resume_elsewhere_from_the_step_reached(
    tmp_path: Path, sshd: SSHServer, pg_url: str, daemons: list[subprocess.Popen[bytes]]
) -> None:
    """Eight suspensions on two hosts (limit 2 each), two daemons of two workers (so both
    run phases at once); one is killed with
    SIGKILL while its phases sleep on the host. The other resumes them once their lease
    (3 s) ran out and one of its workers came free: every phase done once, no finished
    step run again, never more than two phases on a host. (bench/storm.py --daemons 2
    measures the resume time at full size.)"""
    storm = write_storm(tmp_path, [sshd], pg_url, accounts=8, sleep_s=4, lease="3s", workers=2)
    app = storm.app()
    ids = prepare(storm, app)
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    daemons.extend(start_daemon(storm.config, log) for log in logs)

    def running() -> list[tuple[str, str]]:
        # (account, pid of the daemon holding its phase); a claim reads "host:pid:...".
        with app.sessions() as session:
            rows = session.execute(
                select(ScheduledAction.account_id, ScheduledAction.claimed_by).where(
                    ScheduledAction.status == ActionStatus.RUNNING
                )
            )
            return [(account, str(holder).split(":")[1]) for account, holder in rows if holder]

    def holders() -> Counter[str]:
        return Counter(pid for _, pid in running())

    def held_by(pid: int) -> list[str]:
        return [account for account, holder in running() if holder == str(pid)]

    def sleeping_on_the_host(pid: int) -> bool:
        # Each of its phases is inside its 4 s sleep: the kill cuts a running command
        # (one cut while the login shell starts is tests/lab/test_transport.py's).
        text = storm.trace.read_text()
        held = held_by(pid)
        return bool(held) and all(f"start {account} " in text for account in held)

    wait_for(lambda: len(holders()) == 2, 90, "both daemons running phases")
    victim = daemons[0]
    wait_for(lambda: sleeping_on_the_host(victim.pid), 30, "the victim's phases on the host")
    time.sleep(0.5)
    cut = holders()[str(victim.pid)]
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    killed_at = time.monotonic()
    killed_wall = time.time()
    # The survivor takes them over once the lease ran out and a worker of its own is free:
    # both of its workers may be in phases of their own (4 s on the host) at the kill.
    wait_for(lambda: str(victim.pid) not in holders(), 3 + 5 + 4 + 5, "the cut phases resumed")
    resumed_after = time.monotonic() - killed_at

    def all_done() -> bool:
        with app.sessions() as session:
            statuses = session.scalars(
                select(ScheduledAction.status).where(ScheduledAction.id.in_(ids))
            )
            return all(status == ActionStatus.DONE for status in statuses)

    wait_for(all_done, 120, "every phase")
    assert cut >= 1
    assert resumed_after < 3 + 5 + 4  # lease + 5 s, after a phase of the survivor's own
    trace = storm.trace.read_text().splitlines()
    for account_id in storm.accounts:
        # The second step ran once; the first finished once (cut ones started twice),
        # unless the cut command reached its end before the host's watchdog saw its
        # session gone (it looks every second): then that end came before the re-run
        # started, never beside it. A cut command the watchdog missed would end some
        # 3.5 s after the kill, in its `timeout`'s process group.
        assert sum(line.startswith(f"step2 {account_id} ") for line in trace) == 1
        lines = [line for line in trace if f" {account_id} " in line]
        starts = sorted(float(line.split()[-1]) for line in lines if line.startswith("start "))
        ends = sorted(float(line.split()[-1]) for line in lines if line.startswith("end "))
        assert len(ends) in (1, 2), lines
        if len(ends) == 2:
            assert ends[0] < min(starts[1], killed_wall + 2.5), (lines, killed_wall)
        assert 1 <= sum(line.startswith(f"start {account_id} ") for line in trace) <= 2
    # The limits are counted in the database: two daemons never ran three on a host.
    for host in ("web1", "web2"):
        spans = [(s, e) for account, _, s, e in intervals(storm) if storm.accounts[account] == host]
        assert most_at_once(spans) <= 2, host
    assert stop_daemon(daemons[1]) == 0
    app.engine.dispose()


def test_each_notice_is_sent_once_by_two_daemons(
    tmp_path: Path,
    sshd: SSHServer,
    pg_url: str,
    smtp_inbox: SMTPServer,
    daemons: list[subprocess.Popen[bytes]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Notices left pending (the mail server was away) and the suspension notices of
    phases run by both daemons: the lab SMTP sink receives each exactly once."""
    notifier = (
        f'type = "smtp"\nhost = "{smtp_inbox.host}"\nport = {smtp_inbox.port}\nsecurity = "plain"'
    )
    storm = write_storm(
        tmp_path, [sshd], pg_url, accounts=12, sleep_s=0.5, notifier=notifier, workers=4
    )
    app = storm.app()

    def away(_message: object) -> str:
        raise TemporaryDeliveryError("the mail server is away")

    monkeypatch.setattr(app.notices.delivery, "deliver", away)
    ids = prepare(storm, app)
    app.lifecycle.sync()  # notices of the lifecycle, left pending
    with app.sessions() as session:
        pending = session.scalars(select(Correspondence.message_id)).all()
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    daemons.extend(start_daemon(storm.config, log) for log in logs)

    def settled() -> bool:
        with app.sessions() as session:
            statuses = set(
                session.scalars(select(ScheduledAction.status).where(ScheduledAction.id.in_(ids)))
            )
            unsent = session.scalars(
                select(Correspondence.id).where(Correspondence.status == "pending")
            ).all()
        return statuses == {ActionStatus.DONE} and not unsent

    wait_for(settled, 120, "every phase done and every notice sent")
    with app.sessions() as session:
        sent = session.scalars(select(Correspondence.message_id)).all()
    received = Counter(str(message.message["Message-ID"]) for message in smtp_inbox.messages)
    assert set(pending) <= set(sent)
    assert len(sent) >= len(storm.accounts)  # at least each suspension notice
    assert received == Counter(sent)  # every notice once, none twice
    for process in daemons:
        assert stop_daemon(process) == 0
    app.engine.dispose()
