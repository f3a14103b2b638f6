"""`lapse backup`, `backups`, `verify` and `restore` as an on-call engineer types them."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from daemon.cli.common import read_config
from daemon.domain.states import State
from daemon.runtime.app import build_app
from tests.e2e.daemon_process import lapse, local_config
from tests.lab.backup_helpers import tree_fingerprint


def _config(tmp_path: Path, www: Path) -> Path:
    billing = {
        "accounts": [
            {
                "account_id": "acct-7",
                "plan": "default",
                "contact": {"name": "Client", "email": "c@example.org"},
                "currency": "EUR",
                "balance": "0",
                "invoices": [],
                "services": [
                    {"host": "web1", "system_user": "acct7", "docroot": str(www / "site")}
                ],
            }
        ]
    }
    (tmp_path / "billing.json").write_text(json.dumps(billing))
    return local_config(tmp_path, www)


def test_backup_list_verify_and_restore_from_the_command_line(tmp_path: Path) -> None:
    www = tmp_path / "www"
    (www / "site" / "css").mkdir(parents=True)
    (www / "site" / "index.html").write_text("<p>hello</p>")
    (www / "site" / "css" / "main.css").write_text("p{}")
    config = str(_config(tmp_path, www))
    assert lapse("migrate", "-c", config).returncode == 0
    synced = lapse("run", "--once", "-c", config)
    assert synced.returncode == 0, synced.stderr

    made = lapse("backup", "acct-7", "--json", "-c", config)
    assert made.returncode == 0, made.stderr
    backup = json.loads(made.stdout)
    assert backup["status"] == "verified" and backup["objects"] == 2

    listed = json.loads(lapse("backups", "acct-7", "--json", "-c", config).stdout)
    assert [item["id"] for item in listed] == [backup["id"]]

    verified = lapse("verify", backup["id"], "-c", config)
    assert verified.returncode == 0
    assert f"backup {backup['id']}: verified" in verified.stdout

    staging = www / "restored"
    restored = lapse("restore", "acct-7", "--path", str(staging), "-c", config)
    assert restored.returncode == 0, restored.stderr
    assert tree_fingerprint(staging) == tree_fingerprint(www / "site")
    assert "every member matches the archive" in restored.stdout and "swapped in" in restored.stdout

    # A damaged object: verify says which and exits 1; restore refuses.
    archive = next((tmp_path / "backups").rglob("files-1.tar.*"))
    os.truncate(archive, archive.stat().st_size // 2)
    broken = lapse("verify", backup["id"], "-c", config)
    assert broken.returncode == 1
    assert "FAIL files-1.tar" in broken.stdout
    refused = lapse("restore", "acct-7", "--backup", backup["id"], "-c", config)
    assert refused.returncode == 1
    assert "corrupt" in refused.stderr


def test_backup_of_an_unknown_account_is_a_clear_error(tmp_path: Path) -> None:
    www = tmp_path / "www"
    (www / "site").mkdir(parents=True)
    config = str(_config(tmp_path, www))
    assert lapse("migrate", "-c", config).returncode == 0
    result = lapse("backup", "nobody", "-c", config)
    assert result.returncode == 3
    assert result.stderr.strip().splitlines()[-1] == (
        "lapse: error: no account 'nobody' in the state database"
    )


def test_restore_reactivates_a_deleted_account_as_the_operator(tmp_path: Path) -> None:
    www = tmp_path / "www"
    (www / "site").mkdir(parents=True)
    (www / "site" / "index.html").write_text("<p>back</p>")
    config = _config(tmp_path, www)
    assert lapse("run", "--once", "-c", str(config)).returncode == 0
    assert lapse("backup", "acct-7", "-c", str(config)).returncode == 0
    app = build_app(read_config(config))
    app.lifecycle.mark("acct-7", State.DELETED, "removal period ended", "lifecycle")
    shutil.rmtree(www / "site")

    refused = lapse("restore", "acct-7", "--dry-run", "--reactivate", "-c", str(config))
    assert refused.returncode == 2
    assert "cannot go with --dry-run" in refused.stderr

    env = {**os.environ, "SUDO_USER": "night-shift"}
    restored = lapse("restore", "acct-7", "--reactivate", "-c", str(config), env=env)
    assert restored.returncode == 0, restored.stderr
    assert (www / "site" / "index.html").read_text() == "<p>back</p>"
    assert "acct-7: deleted -> active" in restored.stdout
    history = json.loads(lapse("history", "acct-7", "--json", "-c", str(config)).stdout)
    last = [entry for entry in history if entry["what"] == "deleted -> active"][-1]
    assert last["actor"] == "ops:night-shift"
    assert last["detail"].startswith("reactivated by ops after a restore: backup ")
