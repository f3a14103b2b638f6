"""`lapse check-config --deep` against the lab's real services: one config whose every
part answers, and for each part a config where that part alone fails, with its reason.

The parts: the secrets, the state database (PostgreSQL), the billing source (a SQL
table on PostgreSQL), a host over SSH (its host key checked), the backup store (moto
S3: a write, read and delete probe) and an SMTP server (aiosmtpd) with a login.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tomlkit
from aiosmtpd.controller import Controller

from daemon.config.load import load_config
from daemon.runtime.probes import PROBE_PREFIX, Probe, deep_check
from tests.e2e.daemon_process import lapse
from tests.lab.backup_helpers import s3_store, ssh_host
from tests.lab.services.common import free_port
from tests.lab.services.postgres import PostgresServer
from tests.lab.services.s3 import S3Server
from tests.lab.services.smtp import login_check
from tests.lab.services.sshd import SSHServer
from tests.unit.billing.helpers import account_rows, fill_billing_table

# The lab's SMTP server takes a login over plain SMTP, on loopback only.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

SMTP_PASSWORD = "s3cret-smtp"
ENV = {
    "LAPSE_TEST_STATE_PW": "unused-by-trust-auth",
    "LAPSE_TEST_SMTP_PW": SMTP_PASSWORD,
}


class _Discard:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        return "250 2.0.0 discarded"


@pytest.fixture(scope="module")
def smtp_login() -> Iterator[int]:
    """An SMTP server that requires a login (over plain SMTP: loopback only)."""
    port = free_port()
    controller = Controller(
        _Discard(),
        hostname="127.0.0.1",
        port=port,
        auth_required=True,
        auth_require_tls=False,
        authenticator=login_check("lapse", SMTP_PASSWORD),
    )
    controller.start()
    yield port
    controller.stop()


@pytest.fixture
def secrets_env(monkeypatch: pytest.MonkeyPatch, s3: S3Server) -> dict[str, str]:
    env = {**ENV, "LAPSE_TEST_S3_KEY": s3.access_key, "LAPSE_TEST_S3_SECRET": s3.secret_key}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def good(
    tmp_path: Path,
    postgres: PostgresServer,
    sshd: SSHServer,
    s3: S3Server,
    smtp_login: int,
    secrets_env: dict[str, str],
) -> dict[str, Any]:
    """A config (as a TOML document) whose every part answers."""
    suffix = os.urandom(4).hex()
    state_url = postgres.create_database(f"deep_state_{suffix}")
    billing_url = postgres.create_database(f"deep_billing_{suffix}")
    fill_billing_table(billing_url, account_rows("acct-1"))
    bucket = s3.create_bucket(f"deep-{suffix}")
    config = {
        "state": {"url": state_url, "password": {"env": "LAPSE_TEST_STATE_PW"}},
        "billing": {"type": "sql", "url": billing_url, "query": "SELECT * FROM billing_lines"},
        "hosts": {"web1": ssh_host(sshd, [tmp_path])},
        "backup": {"store": s3_store(s3.endpoint_url, bucket)},
        "notices": {
            "notifier": {
                "type": "smtp",
                "host": "127.0.0.1",
                "port": smtp_login,
                "security": "plain",
                "username": "lapse",
                "password": {"env": "LAPSE_TEST_SMTP_PW"},
            }
        },
    }
    path = _write(tmp_path, config)
    migrated = lapse("migrate", "-c", str(path), env={**os.environ, **secrets_env})
    assert migrated.returncode == 0, migrated.stderr
    return config


def _write(directory: Path, config: dict[str, Any], name: str = "lapse.toml") -> Path:
    path = directory / name
    path.write_text(tomlkit.dumps(config))
    return path


def _probes(directory: Path, config: dict[str, Any]) -> dict[str, Probe]:
    return {probe.part: probe for probe in deep_check(load_config(_write(directory, config)))}


PARTS = [
    "secret state.password",
    "secret backup.store.access_key_id",
    "secret backup.store.secret_access_key",
    "secret notices.notifier.password",
    "state database",
    "billing (sql)",
    "host web1",
    "backup store (s3)",
    "notices (smtp)",
]


def test_every_part_of_a_good_config_answers(
    tmp_path: Path, good: dict[str, Any], s3: S3Server, sshd: SSHServer
) -> None:
    probes = _probes(tmp_path, good)

    assert sorted(probes) == sorted(PARTS)
    assert [part for part, probe in probes.items() if not probe.ok] == []
    assert probes["billing (sql)"].detail == "1 account(s) read"
    assert probes["host web1"].detail == (
        f"ssh {sshd.root_user}@{sshd.host}:{sshd.port}, host key known, `true` ran"
    )
    assert probes["notices (smtp)"].detail == (
        f"SMTP server 127.0.0.1:{good['notices']['notifier']['port']}: EHLO, login as lapse"
    )
    assert probes["secret notices.notifier.password"].detail == "read from env LAPSE_TEST_SMTP_PW"
    # The probe object is gone from the bucket.
    bucket = good["backup"]["store"]["bucket"]
    listed = s3.client().list_objects_v2(Bucket=bucket, Prefix=PROBE_PREFIX)
    assert listed.get("KeyCount", 0) == 0


def _broken(config: dict[str, Any], *path: str, value: Any) -> dict[str, Any]:
    """A deep copy of `config` with the key at `path` set to `value`."""
    copy: dict[str, Any] = json.loads(json.dumps(config))
    table = copy
    for key in path[:-1]:
        table = table[key]
    table[path[-1]] = value
    return copy


def test_each_broken_part_fails_alone_with_its_reason(
    tmp_path: Path, good: dict[str, Any], sshd: SSHServer, postgres: PostgresServer
) -> None:
    impostor_key = tmp_path / "impostor"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(impostor_key)], check=True
    )
    impostor = " ".join((tmp_path / "impostor.pub").read_text().split()[:2])
    changed = tmp_path / "known_hosts_changed"
    changed.write_text(f"[{sshd.host}]:{sshd.port} {impostor}\n")
    (tmp_path / "wrong-password").write_text("not-the-password\n")
    cases: list[tuple[dict[str, Any], list[str], str]] = [
        (
            _broken(good, "notices", "notifier", "password", value={"env": "LAPSE_TEST_UNSET"}),
            ["secret notices.notifier.password", "notices (smtp)"],
            "environment variable LAPSE_TEST_UNSET is not set",
        ),
        (
            _broken(good, "state", "url", value=postgres.database_url("deep_nosuch")),
            ["state database"],
            'database "deep_nosuch" does not exist',
        ),
        (
            _broken(good, "billing", "query", value="SELECT * FROM no_such_table"),
            ["billing (sql)"],
            "no_such_table",
        ),
        (
            _broken(good, "hosts", "web1", "known_hosts", value=str(changed)),
            ["host web1"],
            "does not match",
        ),
        (
            _broken(good, "backup", "store", "bucket", value="no-such-bucket"),
            ["backup store (s3)"],
            "NoSuchBucket",
        ),
        (
            _broken(
                good,
                "notices",
                "notifier",
                "password",
                value={"file": str(tmp_path / "wrong-password")},
            ),
            ["notices (smtp)"],
            "login refused: 535",
        ),
    ]
    for config, failing, reason in cases:
        probes = _probes(tmp_path, config)
        failed = sorted(part for part, probe in probes.items() if not probe.ok)
        assert failed == sorted(failing), (failing, probes)
        assert reason in probes[failing[-1]].detail, probes[failing[-1]]


def test_the_command_prints_ok_or_the_reason_and_exits_1_on_a_failure(
    tmp_path: Path, good: dict[str, Any], secrets_env: dict[str, str]
) -> None:
    env = {**os.environ, **secrets_env}
    path = _write(tmp_path, good)
    passed = lapse("check-config", "--deep", "-c", str(path), env=env)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    lines = passed.stdout.splitlines()
    assert [line.split(":")[0].split(maxsplit=1) for line in lines[:-1]] == [
        ["OK", part] for part in PARTS
    ]
    assert lines[-1].startswith(f"{path}: OK (sql billing")

    broken = _write(
        tmp_path,
        _broken(good, "backup", "store", "bucket", value="no-such-bucket"),
        name="broken.toml",
    )
    failed = lapse("check-config", "--deep", "--json", "-c", str(broken), env=env)
    assert failed.returncode == 1
    report = json.loads(failed.stdout)
    assert report["ok"] is False
    assert [check["part"] for check in report["checks"] if not check["ok"]] == ["backup store (s3)"]
    assert report["problems"][0].startswith("backup store (s3): ")
