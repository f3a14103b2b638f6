"""A month-end storm on the lab: many accounts on two sshd hosts, suspended together.

Writes a real config file (so `lapse run -c` daemons and in-process apps read the
same one), a docroot of `site_mb` MB per account under each host's allowed root,
and billing where every account owes. `prepare` creates the accounts, puts them in
the suspended state and queues their suspend phases, as the lifecycle does on the
day they lapse. Two playbooks: the shipped nginx-linux (a verified backup over SSH,
then the maintenance page), or `storm-sleep`, whose every phase is one `run` step
that records its start and end on the host and sleeps (remote latency, no bytes).
The sleep playbook needs no root: `unprivileged` has it log in as the lab's ordinary
user, as an unprivileged playbook would (root's ~/.bashrc on a lab machine may run hooks,
pyenv or nvm, that cost each SSH session a tenth of a second of the cores the daemon runs
on); that user must then be able to reach `root` (every directory above it traversable).
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shlex
import subprocess
import textwrap
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from daemon.config.load import load_config
from daemon.domain.clock import system_clock
from daemon.domain.states import State
from daemon.runtime.app import App, build_app
from daemon.store.models import Account, PlaybookRun, ScheduledAction, StepRecord
from tests.lab.services.common import user_tool
from tests.lab.services.sshd import SSHServer

HOSTS = ("web1", "web2")
PAST_DUE = datetime(2026, 1, 1, tzinfo=UTC)

# How a sleep step waits: its whole time, or (`releasable`) until the storm's release
# file exists, at most its time: a test done with a long phase ends it at once instead of
# waiting it out. The bench keeps the plain sleep (no polling on the host).
_SLEEP = "sleep {{ vars.sleep }}"
_RELEASABLE = (
    "timeout {{ vars.sleep }} sh -c 'until [ -e \"$0\" ]; do sleep 0.05; done' %s || [ $? -eq 124 ]"
)

SLEEP_PLAYBOOK = """
description = "Storm stand-in: each phase waits on the host, recording when it ran"

[vars]
trace = "{trace}"

[[suspend]]
name = "Wait on the host"
type = "run"
command = \"\"\"
echo "start {{{{ account.id }}}} suspend $(date +%s.%N)" >> {{{{ vars.trace }}}}
{wait}
echo "end {{{{ account.id }}}} suspend $(date +%s.%N)" >> {{{{ vars.trace }}}}
\"\"\"

[[suspend]]
name = "Record the second step"
type = "run"
command = "echo \\"step2 {{{{ account.id }}}} $(date +%s.%N)\\" >> {{{{ vars.trace }}}}"

[[unsuspend]]
name = "Come back"
type = "run"
command = "echo \\"start {{{{ account.id }}}} unsuspend $(date +%s.%N)\\" >> {{{{ vars.trace }}}}"

[[verify]]
name = "Wait on the host"
type = "run"
command = \"\"\"
echo "start {{{{ account.id }}}} verify $(date +%s.%N)" >> {{{{ vars.trace }}}}
{wait}
echo "end {{{{ account.id }}}} verify $(date +%s.%N)" >> {{{{ vars.trace }}}}
\"\"\"
"""


@dataclass
class Storm:
    """The files of one storm and how to reach them."""

    root: Path
    config: Path
    billing: Path
    trace: Path  # the sleep playbook's record of step starts and ends
    # Made to end every releasable sleep step under way (write_storm's `releasable`).
    release_file: Path | None = None
    accounts: dict[str, str] = field(default_factory=dict)  # account -> host
    documents: list[dict[str, Any]] = field(default_factory=list)
    users: list[str] = field(default_factory=list)  # Unix users made for the storm

    def remove_users(self) -> None:
        """Remove the Unix users the storm made."""
        for user in self.users:
            subprocess.run(["pkill", "-KILL", "-u", user], check=False)
            user_tool("userdel", user, check=False)

    def release(self) -> None:
        """End every sleep step under way, and make every later one end at once (a storm
        written `releasable`)."""
        assert self.release_file is not None, "the storm was not written releasable"
        self.release_file.touch()

    def app(self) -> App:
        """A fresh in-process app on the storm's config (the real clock)."""
        return build_app(load_config(self.config), system_clock)

    def pay(self, account_ids: list[str]) -> None:
        """Billing now shows these accounts paid."""
        for document in self.documents:
            if document["account_id"] in account_ids:
                document["balance"], document["invoices"] = "0", []
        self.billing.write_text(json.dumps({"accounts": self.documents}))


def write_storm(
    root: Path,
    sshds: list[SSHServer],
    state_url: str,
    *,
    accounts: int,
    site_mb: float = 0.0,
    playbook: str = "storm-sleep",
    sleep_s: float = 2.0,
    workers: int = 8,
    max_parallel: int = 2,
    lease: str = "30s",
    extra_daemon: str = "",
    one_host: bool = False,
    notifier: str = "",
    unprivileged: bool = False,
    releasable: bool = False,
) -> Storm:
    """Write the storm's config, sites and billing under `root` (accounts spread over
    web1 and web2, the first on the first sshd, the second on the last; all on web1
    when `one_host`; logged in as the lab's ordinary user when `unprivileged`, else as
    root). With `releasable`, a sleep step also ends once `Storm.release` was called."""
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)
    trace = root / "trace.log"
    trace.touch()
    trace.chmod(0o666)
    playbooks = root / "playbooks"
    playbooks.mkdir(exist_ok=True)
    release_file = root / "release" if releasable else None
    wait = _RELEASABLE % shlex.quote(str(release_file)) if release_file else _SLEEP
    (playbooks / "storm-sleep.toml").write_text(SLEEP_PLAYBOOK.format(trace=trace, wait=wait))
    storm = Storm(root, root / "lapse.toml", root / "billing.json", trace, release_file)
    host_tables = []
    for index, name in enumerate(HOSTS):
        sshd = sshds[min(index, len(sshds) - 1)]
        www = root / f"www-{name}"
        www.mkdir(exist_ok=True)
        host_tables.append(
            textwrap.dedent(
                f"""
                [hosts.{name}]
                transport = "ssh"
                address = "{sshd.host}"
                port = {sshd.port}
                user = "{sshd.user if unprivileged else sshd.root_user}"
                key_file = "{sshd.client_key_path}"
                known_hosts = "{sshd.known_hosts_path}"
                playbook = "{playbook}"
                allowed_roots = ["{www}"]
                max_parallel = {max_parallel}
                max_sessions = 8
                [hosts.{name}.vars]
                sleep = "{sleep_s}"
                sites_dir = "{root / "sites-unused"}"
                state_dir = "{root / f"lapse-state-{name}"}"
                """
            )
        )
    suffix = secrets.token_hex(2)
    for number in range(accounts):
        account_id = f"storm-{number:04d}"
        host = HOSTS[0 if one_host else number % len(HOSTS)]
        docroot = root / f"www-{host}" / account_id
        docroot.mkdir(exist_ok=True)
        (docroot / "index.html").write_text(f"<p>{account_id}</p>\n")
        if site_mb > 0:
            with (docroot / "data.bin").open("wb") as sink:
                left = int(site_mb * 1024 * 1024)
                while left > 0:
                    chunk = min(left, 1024 * 1024)
                    sink.write(os.urandom(chunk))
                    left -= chunk
        user = "nobody"
        if playbook != "storm-sleep":  # the real playbook locks the account's own user
            user = f"lapse-s{suffix}{number:03d}"
            user_tool("useradd", "--no-create-home", "--shell", "/bin/bash", user)
            storm.users.append(user)
        info = pwd.getpwnam(user)
        for path in [docroot, *docroot.rglob("*")]:
            os.lchown(path, info.pw_uid, info.pw_gid)
        storm.accounts[account_id] = host
        storm.documents.append(_owing(account_id, host, docroot, user))
    storm.billing.write_text(json.dumps({"accounts": storm.documents}))
    storm.config.write_text(
        textwrap.dedent(
            f"""
            playbooks_dir = "{playbooks}"
            [daemon]
            sync_interval = "1h"
            log_format = "json"
            workers = {workers}
            lease = "{lease}"
            stop_timeout = "20s"
            brake_min_accounts = 100000
            {extra_daemon}
            [state]
            url = "{state_url}"
            [billing]
            type = "file"
            path = "{storm.billing}"
            [backup.store]
            type = "local"
            path = "{root / "backups"}"
            [notices.notifier]
            {notifier or f'type = "outbox"{chr(10)}path = "{root / "outbox"}"'}
            [policy.default]
            quiet_hours = ""
            contact_days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
            """
        )
        + "".join(host_tables)
    )
    return storm


def _owing(account_id: str, host: str, docroot: Path, user: str) -> dict[str, Any]:
    return {
        "account_id": account_id,
        "plan": "default",
        "contact": {"name": "Client", "email": f"{account_id}@example.org", "timezone": "UTC"},
        "currency": "EUR",
        "balance": "49.90",
        "invoices": [
            {
                "id": f"INV-{account_id}",
                "due_at": PAST_DUE.isoformat(),
                "total": "49.90",
                "items": [],
            }
        ],
        "services": [
            {
                "host": host,
                "system_user": user,
                "docroot": str(docroot),
                "domains": [],
                "databases": [],
            }
        ],
    }


def prepare(storm: Storm, app: App, phase: str = "suspend") -> list[int]:
    """Create the accounts, put them in the state `phase` belongs to and queue `phase` for
    each (in account order); return the action ids."""
    documents = storm.documents
    storm.billing.write_text(
        json.dumps({"accounts": [dict(d, balance="0", invoices=[]) for d in documents]})
    )
    app.lifecycle.sync()  # the rows, paid up (no lifecycle step yet)
    storm.billing.write_text(json.dumps({"accounts": documents}))
    ids = []
    for account_id in storm.accounts:
        if phase == "suspend":
            lapse(app, account_id)
        ids.append(app.runner.queue.add(account_id, phase))
    return ids


def lapse(app: App, account_id: str) -> None:
    """Put the account where the lifecycle puts it on its suspension day: suspended, its
    removal a month away (what the suspension notice states)."""
    app.lifecycle.mark(account_id, State.SUSPENDED, "storm: lapsed", "storm")
    now = datetime.now(UTC)
    with app.sessions.begin() as session:
        row = session.get(Account, account_id)
        assert row is not None
        row.suspended_at, row.delete_at = now, now + timedelta(days=30)


def intervals(storm: Storm) -> list[tuple[str, str, float, float]]:
    """(account, phase, start, end) of every sleep step that ran to its end, from the
    host's trace (an end closes the latest start: a start cut by a killed daemon stays
    open and is left out)."""
    starts: dict[tuple[str, str], list[float]] = {}
    spans = []
    for line in storm.trace.read_text().splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[0] in ("start", "end"):
            key = (parts[1], parts[2])
            if parts[0] == "start":
                starts.setdefault(key, []).append(float(parts[3]))
            elif starts.get(key):
                spans.append((key[0], key[1], starts[key].pop(), float(parts[3])))
    return spans


def most_at_once(spans: list[tuple[float, float]]) -> int:
    """The largest number of `spans` (start, end) that overlap at one moment."""
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    level = peak = 0
    for _, step in edges:
        level += step
        peak = max(peak, level)
    return peak


def statuses(app: App) -> dict[int, str]:
    """Every playbook action's status by id."""
    with app.sessions() as session:
        rows = session.execute(
            select(ScheduledAction.id, ScheduledAction.status).where(
                ScheduledAction.kind == "playbook"
            )
        ).all()
    return {action_id: str(status) for action_id, status in rows}


def steps_run(app: App, account_id: str) -> list[tuple[str, str]]:
    """(step name, status) of the account's suspend run(s), in order."""
    with app.sessions() as session:
        rows = session.execute(
            select(StepRecord.name, StepRecord.status)
            .join(PlaybookRun, StepRecord.run_id == PlaybookRun.id)
            .where(PlaybookRun.account_id == account_id)
            .order_by(StepRecord.id)
        ).all()
    return [(name, str(status)) for name, status in rows]


def wait_s(deadline_s: float) -> datetime:
    """The wall-clock moment `deadline_s` seconds from now."""
    return datetime.now(UTC) + timedelta(seconds=deadline_s)
