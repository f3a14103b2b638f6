"""A hosting account on a control-panel host, for the panel playbooks' lab tests.

No panel installs on this machine, so each panel's commands are stand-ins
(tests/lab/panels/*.py) reached over the lab's real sshd: executables that check their
arguments against the panel's documented usage and keep the account's state in files
beside them (BIN/../state); DirectAdmin's is an HTTP server on loopback instead, with
its state in the same place. The account is a real Unix user whose home holds the site,
served by the lab nginx; its vhost answers with the panel's suspended page while the
stand-in's suspension marker file exists, as the panel's own web server would.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import subprocess
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from daemon.backup.manifest import PANEL_ARCHIVE, BackupObject
from daemon.backup.views import BackupView
from daemon.config.schema import ALL_WEEKDAYS
from daemon.domain.clock import VirtualClock
from daemon.runtime.app import App
from daemon.store.models import Account, Backup, PlaybookRun, StepRecord
from tests.lab.backup_helpers import backup_app, site_account, ssh_host
from tests.lab.engine_helpers import run_days
from tests.lab.playbook_scene import ORIGINAL_PAGE, START
from tests.lab.services.common import user_tool
from tests.lab.services.nginx import NginxServer
from tests.lab.services.sshd import SSHServer

STANDINS = Path(__file__).resolve().parent / "panels"
__all__ = [
    "ORIGINAL_PAGE",
    "STANDINS",
    "Panel",
    "PanelScene",
    "build_panel_scene",
    "ops_alerts",
]


@dataclass
class Panel:
    """How one panel's stand-in is set up.

    `module` is the stand-in under tests/lab/panels, linked under each name of
    `commands`. `seed(state, user, home, domain)` registers the account with it;
    `marker(state, user, domain)` is the file that exists while the site is suspended;
    `page` is what the vhost answers then. `vars` are the host vars for the playbook.
    """

    module: str
    commands: tuple[str, ...]
    seed: Callable[[Path, str, Path, str], None]
    marker: Callable[[Path, str, str], Path]
    page: str
    vars: Callable[[Path], dict[str, str]]


@dataclass
class PanelScene:
    """The account on the lab host, its panel stand-in, and the app managing it."""

    app: App
    clock: VirtualClock
    account_id: str
    user: str
    domain: str
    home: Path
    docroot: Path
    bin_dir: Path
    state: Path
    nginx: NginxServer
    billing_path: Path
    account: dict[str, Any]
    store_root: Path
    config_path: Path

    def get(self, path: str = "/") -> httpx.Response:
        """Fetch `path` of the site through the lab nginx."""
        return httpx.get(self.nginx.url(path), headers={"Host": self.domain}, timeout=10)

    def pay(self) -> None:
        """The client pays everything: billing shows nothing owed."""
        self.account["balance"] = "0"
        self.account["invoices"] = []
        self.billing_path.write_text(json.dumps({"accounts": [self.account]}))

    def calls(self) -> list[list[str]]:
        """Every stand-in command run so far, as [name, *arguments]."""
        log = self.state / "calls.log"
        lines = log.read_text().splitlines() if log.exists() else []
        return [json.loads(line) for line in lines]

    def called(self) -> list[str]:
        """The stand-in calls as 'name first-argument ...' strings, for order checks."""
        return [" ".join(call) for call in self.calls()]

    def archives(self) -> list[list[Any]]:
        """The archives the stand-in wrote or read: [command, path, size, SHA-256]."""
        log = self.state / "archives.log"
        lines = log.read_text().splitlines() if log.exists() else []
        return [json.loads(line) for line in lines]

    @property
    def archive_dir(self) -> Path:
        """Where the playbook has Lapse make the fresh directories panel archives pass."""
        return Path(self.app.config.hosts["web1"].vars["state_dir"]) / "panel-archives"

    def backup(self) -> BackupView:
        """The account's newest backup."""
        return self.app.backups.list(self.account_id)[0]

    def panel_object(self, backup: BackupView) -> BackupObject:
        """The backup's panel archive entry, which it must have."""
        assert backup.manifest is not None
        [entry] = [o for o in backup.manifest.objects if o.kind == PANEL_ARCHIVE]
        return entry

    def stored(self, backup: BackupView, name: str) -> Path:
        """Where object `name` of `backup` lies in the scene's local store."""
        return self.store_root / self.account_id / backup.id / name

    def verification(self, backup: BackupView) -> dict[str, Any]:
        """What verifying `backup` recorded of each object (its listing)."""
        with self.app.sessions() as session:
            row = session.get(Backup, backup.id)
            assert row is not None and row.manifest is not None
            objects: dict[str, Any] = row.manifest["verification"]["objects"]
            return objects

    def suspend(self) -> None:
        """Let the lifecycle reach suspension, then run the queued suspend phase."""
        run_days(self.app, self.clock, 40)
        self.app.runner.run_pending()

    def reach_deletion(self) -> None:
        """Past the removal deadline and its warnings, then run the queued phase."""
        run_days(self.app, self.clock, 40)
        self.app.runner.run_pending()

    def reactivate(self) -> None:
        """The client pays; the next sync reactivates and the runner undoes the suspension."""
        self.pay()
        self.app.lifecycle.sync()
        self.app.runner.run_pending()

    def state_of_account(self) -> str:
        with self.app.sessions() as session:
            row = session.get(Account, self.account_id)
            assert row is not None
            return row.state

    def steps(self, phase: str) -> list[tuple[str, str]]:
        """(name, status) of the steps of the account's runs of `phase`, oldest first."""
        with self.app.sessions() as session:
            rows = session.execute(
                select(StepRecord.name, StepRecord.status)
                .join(PlaybookRun, StepRecord.run_id == PlaybookRun.id)
                .where(PlaybookRun.phase == phase)
                .order_by(StepRecord.run_id, StepRecord.position)
            ).all()
        return [(name, status) for name, status in rows]

    def failed_step(self, phase: str) -> tuple[str, str | None]:
        """The failed step of the account's latest run of `phase`: (name, error)."""
        with self.app.sessions() as session:
            run = session.scalars(
                select(PlaybookRun)
                .where(PlaybookRun.account_id == self.account_id, PlaybookRun.phase == phase)
                .order_by(PlaybookRun.id.desc())
            ).first()
            assert run is not None and run.status == "failed", run and run.status
            step = session.scalars(
                select(StepRecord).where(StepRecord.run_id == run.id, StepRecord.status == "failed")
            ).one()
            return step.name, step.error


def ops_alerts(logs: Sequence[Mapping[str, object]], kind: str) -> list[Mapping[str, object]]:
    """The `kind` ops alerts among captured log entries."""
    return [entry for entry in logs if entry["event"] == "ops alert" and entry["alert"] == kind]


def _toml(tables: Mapping[str, Any], prefix: str = "") -> str:
    """Write nested tables of strings, numbers, lists and inline tables as TOML."""
    plain = {k: v for k, v in tables.items() if not isinstance(v, Mapping)}
    nested = {k: v for k, v in tables.items() if isinstance(v, Mapping)}
    lines = [f"{key} = {_toml_value(value)}" for key, value in plain.items()]
    for key, value in nested.items():
        name = f"{prefix}.{key}" if prefix else key
        lines.append(f"\n[{name}]\n" + _toml(value, name))
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    return json.dumps(str(value))


def _vhost(nginx: NginxServer, domain: str, docroot: Path, marker: Path, page: str) -> str:
    return (
        f"server {{\n    listen {nginx.host}:{nginx.port};\n    server_name {domain};\n"
        f"    root {docroot};\n    default_type text/html;\n"
        f'    location / {{\n        if (-f {marker}) {{ return 200 "{page}\\n"; }}\n    }}\n}}\n'
    )


@contextmanager
def build_panel_scene(
    tmp_path: Path,
    sshd: SSHServer,
    nginx: NginxServer,
    panel: Panel,
    playbook: str,
) -> Iterator[PanelScene]:
    """Set up the account, its site, the panel stand-in and the app; remove them after."""
    suffix = secrets.token_hex(3)
    user = f"lapse-p{suffix}"
    domain = f"shop-{suffix}.example.test"
    homes = tmp_path / "home"
    home = homes / user
    homes.mkdir()
    user_tool("useradd", "--create-home", "--home-dir", str(home), "--shell", "/bin/bash", user)
    docroot = home / "public_html"
    docroot.mkdir()
    (docroot / "index.html").write_text(ORIGINAL_PAGE)
    info = pwd.getpwnam(user)
    for path in [home, *home.rglob("*")]:
        os.lchown(path, info.pw_uid, info.pw_gid)

    base = tmp_path / "panel"
    bin_dir, state = base / "bin", base / "state"
    bin_dir.mkdir(parents=True)
    state.mkdir(exist_ok=True)
    for command in panel.commands:
        (bin_dir / command).symlink_to(STANDINS / panel.module)
    panel.seed(state, user, home, domain)
    marker = panel.marker(state, user, domain)
    vhost = nginx.sites_dir / f"{domain}.conf"
    vhost.write_text(_vhost(nginx, domain, docroot, marker, panel.page))
    nginx.reload()

    host = ssh_host(
        sshd,
        [homes],
        playbook=playbook,
        vars={
            "panel_path": str(bin_dir),
            "state_dir": str(tmp_path / "lapse-state"),
            "check_base": f"http://{nginx.host}:{nginx.port}",
            **panel.vars(state),
        },
    )
    account = site_account("acct-shop", "web1", docroot, [])
    account["services"][0]["domains"] = [domain]
    account["services"][0]["system_user"] = user
    account["balance"] = "49.90"
    account["invoices"] = [
        {"id": "INV-91", "due_at": START.isoformat(), "total": "49.90", "items": []}
    ]
    clock = VirtualClock(START)
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    store = {"type": "local", "path": str(tmp_path / "backups")}
    policy = {"quiet_hours": "", "contact_days": list(ALL_WEEKDAYS)}
    app = backup_app(
        tmp_path,
        state_url,
        clock,
        hosts={"web1": host},
        store=store,
        accounts=[account],
        policy=policy,
    )
    # The same config as a file, for `lapse` commands run against the scene.
    config_path = tmp_path / "lapse.toml"
    config_path.write_text(
        _toml(
            {
                "state": {"url": state_url},
                "billing": {"type": "file", "path": str(tmp_path / "billing.json")},
                "backup": {"store": store, "retention": "90d"},
                "notices": {"notifier": {"type": "outbox", "path": str(tmp_path / "outbox")}},
                "policy": {"default": policy},
                "hosts": {"web1": host},
            }
        )
    )
    built = PanelScene(
        app=app,
        clock=clock,
        account_id="acct-shop",
        user=user,
        domain=domain,
        home=home,
        docroot=docroot,
        bin_dir=bin_dir,
        state=state,
        nginx=nginx,
        billing_path=tmp_path / "billing.json",
        account=account,
        store_root=tmp_path / "backups",
        config_path=config_path,
    )
    try:
        yield built
    finally:
        app.transports.close()
        subprocess.run(["pkill", "-KILL", "-u", user], check=False)
        user_tool("userdel", user, check=False)
        vhost.unlink(missing_ok=True)
        nginx.reload()
