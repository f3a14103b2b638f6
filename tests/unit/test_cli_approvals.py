"""`lapse approvals`, `lapse approve`, `lapse reject` and `lapse console hash-password` as
commands: what they print and how they refuse (the gate itself is tested in the lab)."""

from __future__ import annotations

import json
from pathlib import Path

from argon2 import PasswordHasher
from click.testing import CliRunner

from daemon.cli.main import cli
from daemon.domain.errors import UnknownAccountError


def _config(tmp_path: Path) -> Path:
    (tmp_path / "billing.json").write_text('{"accounts": []}')
    config = tmp_path / "config.toml"
    config.write_text(
        f'[state]\nurl = "sqlite:///{tmp_path / "state.db"}"\n'
        '[billing]\ntype = "file"\npath = "billing.json"\n'
        '[backup.store]\ntype = "local"\npath = "backups"\n'
        '[notices.notifier]\ntype = "outbox"\npath = "outbox"\n'
        '[policy.default]\napprove = ["delete"]\n'
    )
    # Only `run` and `migrate` create a state database.
    assert CliRunner().invoke(cli, ["migrate", "-c", str(config)]).exit_code == 0
    return config


def test_an_empty_approval_queue(tmp_path: Path) -> None:
    config = str(_config(tmp_path))
    result = CliRunner().invoke(cli, ["approvals", "-c", config])
    assert (result.exit_code, result.stdout) == (0, "no phase waits for approval\n")
    result = CliRunner().invoke(cli, ["approvals", "--json", "-c", config])
    assert json.loads(result.stdout) == []


def test_deciding_on_an_unknown_account_is_refused(tmp_path: Path) -> None:
    config = str(_config(tmp_path))
    approve = CliRunner().invoke(cli, ["approve", "nobody", "-c", config])
    # main() turns it into one line and exit 3, as for every unknown account
    assert isinstance(approve.exception, UnknownAccountError)
    assert str(approve.exception).startswith("no account 'nobody' in the state database")
    reject = CliRunner().invoke(cli, ["reject", "nobody", "-c", config])
    assert reject.exit_code == 2  # --reason is required
    assert "--reason" in reject.output


def test_hash_password_prints_an_argon2_hash_of_the_password() -> None:
    result = CliRunner().invoke(cli, ["console", "hash-password", "--stdin"], input="s3cret\n")
    assert result.exit_code == 0
    printed = result.output.strip()
    assert printed.startswith("$argon2id$")
    assert PasswordHasher().verify(printed, "s3cret")
    empty = CliRunner().invoke(cli, ["console", "hash-password", "--stdin"], input="\n")
    assert empty.exit_code == 1
