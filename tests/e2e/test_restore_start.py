"""`lapse restore` sets up only what a restore uses, and still records and refuses as before.

The command builds the state database, the backup service and the hosts' transports
(daemon.runtime.restore_parts), not the whole application: no notices, templates,
billing source, lifecycle engine or playbook runner, unless --reactivate or a
control panel's archive asks for them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.e2e.daemon_process import lapse, local_config
from tests.lab.backup_helpers import tree_fingerprint

# What the whole application loads and a restore of files and databases does not use.
_NOT_LOADED = (
    "daemon.runtime.app",
    "daemon.notices.desk",
    "daemon.notices.alerts",
    "jinja2",
    "daemon.billing.dispatch",
    "daemon.lifecycle.engine",
    "daemon.playbooks.runner",
    "boto3",
)


def _account(account_id: str, docroot: Path) -> dict[str, object]:
    return {
        "account_id": account_id,
        "plan": "default",
        "contact": {"name": "Client", "email": "c@example.org"},
        "currency": "EUR",
        "balance": "0",
        "invoices": [],
        "services": [{"host": "web1", "system_user": "site", "docroot": str(docroot)}],
    }


def _backed_up(tmp_path: Path) -> tuple[Path, Path]:
    """Two accounts synced (acct-7 with a site, acct-8 with none), acct-7 backed up;
    return (the config, the site's docroot)."""
    www = tmp_path / "www"
    site = www / "site"
    (site / "css").mkdir(parents=True)
    (site / "index.html").write_text("<p>hello</p>")
    (site / "css" / "main.css").write_text("p{}")
    (www / "other").mkdir()
    accounts = [_account("acct-7", site), _account("acct-8", www / "other")]
    (tmp_path / "billing.json").write_text(json.dumps({"accounts": accounts}))
    config = local_config(tmp_path, www)
    synced = lapse("run", "--once", "-c", str(config))
    assert synced.returncode == 0, synced.stderr
    made = lapse("backup", "acct-7", "-c", str(config))
    assert made.returncode == 0, made.stderr
    return config, site


def test_a_restore_loads_only_its_parts_and_is_recorded(tmp_path: Path) -> None:
    """The restore runs without the rest of the application, and its history event and
    audit entry are written as before, under the operator's name."""
    config, site = _backed_up(tmp_path)
    before = tree_fingerprint(site)
    (site / "index.html").write_text("<p>defaced</p>")
    # The command ends the process itself once it succeeded (daemon.cli.teardown): the
    # modules are looked at as it does.
    script = (
        "import json, os, sys\n"
        "from daemon.cli.main import main\n"
        "end = os._exit\n"
        "def looked_at(status):\n"
        f"    loaded = [m for m in {_NOT_LOADED!r} if m in sys.modules]\n"
        "    print(json.dumps({'status': status, 'loaded': loaded}), flush=True)\n"
        "    end(status)\n"
        "os._exit = looked_at\n"
        f"main(['restore', 'acct-7', '--force', '-c', {str(config)!r}])\n"
    )
    ran = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "SUDO_USER": "night-shift"},
    )
    outcome = json.loads(ran.stdout.strip().splitlines()[-1])
    assert outcome == {"status": 0, "loaded": []}, ran.stderr
    assert tree_fingerprint(site) == before

    history = json.loads(lapse("history", "acct-7", "--json", "-c", str(config)).stdout)
    restores = [entry for entry in history if entry["detail"].startswith("restore of backup")]
    assert [(entry["actor"], entry["detail"].split(" ")[4]) for entry in restores] == [
        ("ops:night-shift", "restored:")
    ]
    exported = lapse("audit", "export", "acct-7", "--json", "-c", str(config))
    record = json.loads(exported.stdout)
    assert record["chain_intact"] is True
    assert [e for e in record["entries"] if "restore of backup" in e["summary"]] != []


def test_a_restore_still_refuses_what_it_refused(tmp_path: Path) -> None:
    """Each refusal keeps its message and exit status, and leaves the site as it was."""
    config, site = _backed_up(tmp_path)
    before = tree_fingerprint(site)
    backups = json.loads(lapse("backups", "acct-7", "--json", "-c", str(config)).stdout)
    backup_id = backups[0]["id"]
    cases = [
        (["acct-7"], 1, "pass --force (or --reactivate)"),
        (["acct-8"], 1, "acct-8 has no verified backup to restore"),
        (["acct-8", "--backup", backup_id], 1, "belongs to another account, not acct-8"),
        (["nobody"], 3, "no account 'nobody' in the state database"),
        (["acct-7", "--files-only", "--databases-only"], 2, "exclude each other"),
    ]
    for arguments, status, message in cases:
        refused = lapse("restore", *arguments, "-c", str(config))
        assert (refused.returncode, message in refused.stderr) == (status, True), refused.stderr
    assert tree_fingerprint(site) == before
    history = json.loads(lapse("history", "acct-7", "--json", "-c", str(config)).stdout)
    assert [entry for entry in history if entry["detail"].startswith("restore of")] == []


def test_a_restore_ends_with_its_output_whole_and_the_state_database_closed(
    tmp_path: Path,
) -> None:
    """Ended without the interpreter's teardown, a restore still prints everything (into
    a pipe, where output is buffered) and closes the state database first: SQLite
    removes its write-ahead log when the last connection closes."""
    config, _site = _backed_up(tmp_path)
    restored = lapse("restore", "acct-7", "--force", "-c", str(config))
    assert restored.returncode == 0, restored.stderr
    lines = restored.stdout.splitlines()
    assert [line.split(" (")[0] for line in lines[:-1]] == ["  restored files-1.tar.zst"]
    assert re.fullmatch(r"acct-7: restored backup \S+ as ops:\S+", lines[-1])
    assert not (tmp_path / "state.db-wal").exists()
