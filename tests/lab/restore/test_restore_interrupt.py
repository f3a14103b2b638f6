"""`lapse restore` interrupted by Ctrl-C (SIGINT) at different moments: the live tree is
either untouched or fully restored, and no staging directory stays behind."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from daemon.backup.staging import STAGING_PREFIX
from daemon.config.schema import S3Store
from tests.lab.backup_helpers import tree_fingerprint
from tests.lab.restore_scene import RestoreScene
from tests.lab.services.sshd import SSHServer

MIB = 1024 * 1024


def _toml(values: dict[str, Any]) -> str:
    lines = []
    for key, value in values.items():
        if isinstance(value, dict):
            inner = ", ".join(f"{k} = {json.dumps(v)}" for k, v in value.items())
            lines.append(f"{key} = {{ {inner} }}")
        else:
            lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines)


def _config(scene: RestoreScene, tmp_path: Path) -> Path:
    """The scene's own config as a file, for `lapse` run as its own process."""
    config = scene.app.config
    host = {
        "transport": "ssh",
        "address": config.hosts["web1"].address,
        "port": config.hosts["web1"].port,
        "user": config.hosts["web1"].user,
        "key_file": str(config.hosts["web1"].key_file),
        "known_hosts": str(config.hosts["web1"].known_hosts),
        "playbook": "nginx-linux",
        "allowed_roots": [str(scene.www)],
    }
    store = config.backup.store
    assert isinstance(store, S3Store)
    path = tmp_path / "lapse.toml"
    path.write_text(
        f"""
[state]
url = "{config.state.url}"
[billing]
type = "file"
path = "{tmp_path / "billing.json"}"
[hosts.web1]
{_toml(host)}
[backup.store]
{
            _toml(
                {
                    "type": "s3",
                    "bucket": store.bucket,
                    "endpoint_url": store.endpoint_url,
                    "region": "us-east-1",
                    "access_key_id": {"env": "LAPSE_TEST_S3_KEY"},
                    "secret_access_key": {"env": "LAPSE_TEST_S3_SECRET"},
                }
            )
        }
[notices.notifier]
type = "outbox"
path = "{tmp_path / "outbox"}"
"""
    )
    return path


def test_ctrl_c_at_any_moment_leaves_the_site_untouched_or_fully_restored(
    ssh_scene: RestoreScene, tmp_path: Path
) -> None:
    scene = ssh_scene
    # Large enough that the stream outlasts the test's look for the staging directory on
    # a busy machine: the earliest interrupt must land before the swap.
    (scene.docroot / "uploads" / "large.bin").write_bytes(os.urandom(256 * MIB))
    backup = scene.app.backups.create("acct-1")
    original = tree_fingerprint(scene.docroot)
    config = _config(scene, tmp_path)
    lapse = str(Path(sys.executable).with_name("lapse"))
    outcomes = []
    for delay in (0.0, 0.4, 0.8, 1.6, 3.2):
        (scene.docroot / "planted.php").write_text("<?php system($_GET['c']);\n")
        defaced = tree_fingerprint(scene.docroot)
        process = subprocess.Popen(
            _interruptible(
                [lapse, "restore", "acct-1", "--backup", backup.id, "--force", "-c", str(config)]
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 30
        while not _staging(scene) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        _out, errors = process.communicate(timeout=60)
        # A swap under way finishes on the host on its own, and the host's script removes
        # its staging directory once tar's input ends; give them time on a busy machine.
        deadline = time.monotonic() + 30
        while scene.leftovers() and time.monotonic() < deadline:
            time.sleep(0.1)
        now = tree_fingerprint(scene.docroot)
        assert now in (defaced, original), f"a half-restored tree after {delay} s"
        assert scene.leftovers() == [], errors.decode()[-3000:]
        outcomes.append("restored" if now == original else "untouched")
    print("outcomes by delay:", outcomes)
    # The earliest interrupt lands mid-stream: the live tree was never touched then.
    assert outcomes[0] == "untouched"


def _interruptible(argv: list[str]) -> list[str]:
    """`argv` run with Ctrl-C (SIGINT) back to its default: a suite started in the
    background of a shell without job control (`make test &`, nohup) has it ignored, and
    an ignored signal stays ignored across exec, so the restore would never see it."""
    launcher = "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    launcher += "os.execv(sys.argv[1], sys.argv[1:])"
    return [sys.executable, "-c", launcher, *argv]


def _staging(scene: RestoreScene) -> bool:
    """Whether a staging directory is beside the docroot (looked at there only: quick)."""
    return any(entry.name.startswith(".lapse-restore-") for entry in scene.www.iterdir())


def _running(pattern: str) -> list[str]:
    """The command lines of this machine's processes holding `pattern`."""
    found = subprocess.run(["pgrep", "-af", pattern], capture_output=True, text=True, check=False)
    return [line for line in found.stdout.splitlines() if "pgrep" not in line]


def _sessions(sshd: SSHServer) -> list[str]:
    """The command lines of every process the lab sshd of this test's worker runs (its
    sessions and what they started), the listener itself apart."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, pending = [], list(children.get(sshd.process.popen.pid, []))
    while pending:
        pid = pending.pop()
        pending += children.get(pid, [])
        try:
            found.append((Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" "))
        except OSError:
            continue
    return [line.decode(errors="replace") for line in found]


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill-9"])
def test_a_restore_stopped_during_its_head_start_leaves_nothing_behind(
    ssh_scene: RestoreScene, sshd: SSHServer, tmp_path: Path, stop: signal.Signals
) -> None:
    """Interrupted or killed while its head start is under way (the child looking the
    backup up, the host's session waiting for its script, the store's answer on its way),
    the restore leaves the site as it was or fully restored, no session on the host and
    no child of its own; interrupted, no staging directory either (killed, at most that)."""
    scene = ssh_scene
    backup = scene.app.backups.create("acct-1")
    scene.app.transports.close()  # the scene's own connection: only the restore's may count
    original = tree_fingerprint(scene.docroot)
    config = _config(scene, tmp_path)
    lapse = str(Path(sys.executable).with_name("lapse"))
    command = [lapse, "restore", "acct-1", "--backup", backup.id, "--force", "-c", str(config)]
    for delay in (0.1, 0.3, 0.5, 0.7, 0.9):
        (scene.docroot / "planted.php").write_text("<?php system($_GET['c']);\n")
        defaced = tree_fingerprint(scene.docroot)
        process = subprocess.Popen(
            _interruptible(command), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        time.sleep(delay)
        process.send_signal(stop)
        process.communicate(timeout=60)
        deadline = time.monotonic() + 20
        while (_sessions(sshd) or _running(backup.id) or scene.leftovers()) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.1)
        assert _sessions(sshd) == [], f"a session left on the host after {delay} s"
        assert _running(backup.id) == [], f"a process of the restore left after {delay} s"
        left = [Path(path) for path in scene.leftovers()]
        if stop == signal.SIGKILL:
            # Killed outright, the command can leave its staging directory when the host's
            # watchdog kills the script before it removed it (docs/backups.md, "Left
            # behind"): that, and nothing else.
            for path in left:
                assert path.parent == scene.www and path.name.startswith(STAGING_PREFIX)
                shutil.rmtree(path)
        else:
            assert left == []
        assert tree_fingerprint(scene.docroot) in (defaced, original), f"half-restored, {delay} s"
