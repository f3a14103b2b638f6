"""The panel stand-ins refuse what the real commands refuse: a playbook tested against a
stand-in that accepted anything would prove nothing. Each is run directly, under its
command names, with calls the documented usage does not allow."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.lab.panel_scene import STANDINS
from tests.lab.panels.directadmin import DirectAdmin, serve


def _standin(tmp_path: Path, module: str, *names: str) -> Path:
    """Link `module` under each of `names` in tmp_path/bin; its state is tmp_path/state."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (tmp_path / "state").mkdir()
    for name in names:
        (bin_dir / name).symlink_to(STANDINS / module)
    return bin_dir


def _run(command: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([command, *args], capture_output=True, text=True, check=False)


def test_whmapi1_refuses_unknown_options_parameters_and_users(tmp_path: Path) -> None:
    bin_dir = _standin(tmp_path, "cpanel.py", "whmapi1", "pkgacct")
    whmapi1 = bin_dir / "whmapi1"

    unknown_option = _run(whmapi1, "--output=toml", "accountsummary", "user=bob")
    assert unknown_option.returncode == 1 and "Unknown option" in unknown_option.stderr
    # WHM answers a failed call with result 0 and a reason, and exit status 0.
    for args, reason in [
        (["suspendacct", "reason=x"], "Missing required parameter: “user”"),
        (["suspendacct", "user=bob", "force=1"], "“force” is not valid"),
        (["suspendacct", "user=bob"], "The user “bob” does not exist."),
        (["nosuchcall", "user=bob"], "Unknown app"),
    ]:
        answer = _run(whmapi1, "--output=json", *args)
        meta = json.loads(answer.stdout)["metadata"]
        assert (answer.returncode, meta["result"]) == (0, 0) and reason in meta["reason"]
    assert _run(bin_dir / "pkgacct", "--bogus", "bob").returncode == 1
    assert "Unable to find the user" in _run(bin_dir / "pkgacct", "bob", "/tmp").stderr


@pytest.mark.parametrize(
    ("args", "code", "output"),
    [
        ([], 1, "Usage: v-suspend-user USER [RESTART]"),
        (["bob", "yes", "extra"], 1, "Usage: v-suspend-user USER [RESTART]"),
        (["bob"], 3, "Error: user bob doesn't exist"),
    ],
)
def test_hestia_commands_refuse_as_hestia_does(
    tmp_path: Path, args: list[str], code: int, output: str
) -> None:
    bin_dir = _standin(tmp_path, "hestia.py", "v-suspend-user")
    result = _run(bin_dir / "v-suspend-user", *args)
    assert (result.returncode, result.stdout.strip()) == (code, output)


def test_plesk_refuses_unknown_commands_options_and_subscriptions(tmp_path: Path) -> None:
    plesk = _standin(tmp_path, "plesk.py", "plesk") / "plesk"
    for args, message in [
        (["bin", "subscription", "--suspend", "example.org"], "Unable to find domain"),
        (["bin", "subscription", "--webspace-off"], "Usage: subscription"),
        (["bin", "pleskbackup", "--domains-name", "a.org", "--bogus"], "Unknown option"),
        (["bin", "pleskrestore", "--restore", "/x.tar"], "Usage: pleskrestore"),
        (["bin", "nosuchutility"], "Usage: plesk bin"),
    ]:
        result = _run(plesk, *args)
        assert result.returncode == 1 and message in result.stderr, (args, result.stderr)


def test_directadmin_refuses_bad_auth_unknown_values_and_users(tmp_path: Path) -> None:
    panel = DirectAdmin(tmp_path, "right")
    with serve(panel) as url:
        select = f"{url}/CMD_API_SELECT_USERS"
        assert httpx.post(select, data={"select0": "bob"}, auth=("admin", "no")).status_code == 401
        for form, details in [
            ({"select0": "bob", "dosuspend": "yes", "suspend": "Suspend"}, "Unknown form values"),
            ({"dosuspend": "yes"}, "select0 and one of"),
            ({"select0": "bob", "dosuspend": "yes", "delete": "yes"}, "select0 and one of"),
            ({"select0": "bob", "dosuspend": "yes"}, "User bob does not exist"),
        ]:
            answer = httpx.post(select, data=form, auth=("admin", "right"))
            assert answer.status_code == 200 and answer.text.startswith("error=1")
            assert details in answer.text.replace("+", " ").replace("%2C", ",")
