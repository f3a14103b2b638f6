"""The `lapse` command line as an operator uses it, each command a real process."""

from __future__ import annotations

import getpass
import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.e2e.daemon_process import LAPSE, lapse, python, start_daemon, stop_daemon, wait_for


@pytest.fixture
def embedded_env(tmp_path: Path) -> dict[str, str]:
    """An environment where `lapse` without -c keeps its embedded data under tmp_path."""
    env = os.environ.copy()
    env.pop("LAPSE_CONFIG", None)
    env["LAPSE_DATA_DIR"] = str(tmp_path / "data")
    env["USER"] = getpass.getuser()
    env.pop("SUDO_USER", None)
    return env


def test_check_config_reports_every_problem_with_file_and_key(tmp_path: Path) -> None:
    config = tmp_path / "lapse.toml"
    config.write_text(
        "\n".join(
            [
                "[state]",
                'url = "sqlite:///state.db"',
                "[billing]",
                'type = "ftp"',
                "[policy.default]",
                'notice_period = "seven days"',
                "reminder_ofsets = []",
                "[daemon]",
                'sync_interval = "-5m"',
            ]
        )
    )

    result = lapse("check-config", "-c", str(config))

    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert f"{config}: at 'billing.type'" in result.stderr
    assert f"{config}: at 'policy.default.notice_period'" in result.stderr
    assert f"{config}: at 'policy.default.reminder_ofsets': unknown option" in result.stderr
    assert f"{config}: at 'daemon.sync_interval'" in result.stderr
    assert f"{config}: at 'notices': missing required option" in result.stderr
    assert lines[-1] == "6 problem(s) found"


def test_check_config_accepts_the_example_config() -> None:
    example = Path(__file__).resolve().parents[2] / "config.example.toml"

    result = lapse("check-config", "-c", str(example))

    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_check_config_names_a_toml_syntax_error(tmp_path: Path) -> None:
    config = tmp_path / "broken.toml"
    config.write_text('[state]\nurl = "sqlite:///x.db\n')

    result = lapse("check-config", "-c", str(config))

    assert result.returncode == 1
    assert str(config) in result.stderr
    assert "line 2" in result.stderr


def test_embedded_run_sends_a_reminder_and_records_a_final_notice_within_a_minute(
    tmp_path: Path, embedded_env: dict[str, str]
) -> None:
    outbox = tmp_path / "data" / "outbox"
    daemon = start_daemon_embedded(tmp_path, embedded_env)
    try:
        wait_for(lambda: len(list(outbox.glob("*.eml"))) >= 3, 60, "notices in the outbox")
    finally:
        assert stop_daemon(daemon, signal.SIGTERM) == 0

    listing = lapse("accounts", "--json", env=embedded_env)
    assert listing.returncode == 0, listing.stderr
    states = {row["account_id"]: row["state"] for row in json.loads(listing.stdout)}
    assert states["acme"] == "active"
    assert states["cobalt"] == "reminded(1)"
    # Numbered by what was sent: delta's first reminder is number 1, though 12 days late.
    assert states["delta"] == "reminded(1)"
    assert states["golf"] == "payment-plan"
    # First seen a month overdue: a reminder first; the final notice follows after the gap.
    assert states["echo"] == "reminded(1)"
    assert states["foxtrot"] == "exempt"
    assert states["hotel"] == "active"  # 0.50 due is below the minimum balance

    letters = sorted(path.read_bytes() for path in outbox.glob("*.eml"))
    subjects = b"\n".join(letters)
    assert b"X-Lapse-Account: echo" in subjects
    assert b"X-Lapse-Notice: final" in subjects  # india's, on the express plan

    history = lapse("history", "india", env=embedded_env)
    assert history.returncode == 0, history.stderr
    assert "final-notice" in history.stdout
    assert "final" in history.stdout


def test_hold_and_release_are_recorded_with_the_operator(
    tmp_path: Path, embedded_env: dict[str, str]
) -> None:
    first_sync(tmp_path, embedded_env)

    held = lapse("hold", "delta", "--reason", "client disputes invoice", env=embedded_env)
    assert held.returncode == 0, held.stderr
    assert "on-hold" in held.stdout

    history = lapse("history", "delta", "--json", env=embedded_env)
    entries = json.loads(history.stdout)
    hold_entry = next(entry for entry in entries if "on-hold" in str(entry["what"]))
    assert hold_entry["actor"] == f"ops:{getpass.getuser()}"
    assert "client disputes invoice" in str(hold_entry["detail"])

    released = lapse("release", "delta", env=embedded_env)
    assert released.returncode == 0, released.stderr
    assert "on-hold ->" in released.stdout

    again = lapse("release", "delta", env=embedded_env)
    assert again.returncode == 1
    assert again.stderr.startswith("lapse: ")
    assert "delta" in again.stderr


def test_unknown_account_is_one_clear_line_and_exit_3(
    tmp_path: Path, embedded_env: dict[str, str]
) -> None:
    assert lapse("migrate", env=embedded_env).returncode == 0
    result = lapse("status", "nosuchaccount", env=embedded_env)

    assert result.returncode == 3
    data = tmp_path / "data"
    assert result.stderr.strip().splitlines() == [
        f"lapse: config embedded demo (data in {data}); state database {data / 'state.db'}",
        "lapse: error: no account 'nosuchaccount' in the state database",
    ]


def test_a_mistyped_data_dir_is_an_error_not_a_new_database(
    tmp_path: Path, embedded_env: dict[str, str]
) -> None:
    typo = tmp_path / "typo"
    result = lapse("accounts", env={**embedded_env, "LAPSE_DATA_DIR": str(typo)})

    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"lapse: error: no state database at {typo / 'state.db'}: check the config's "
        "[state] url (or $LAPSE_DATA_DIR), or run `lapse migrate` to create it"
    )
    assert not typo.exists()


def test_simulate_shows_the_documented_default_sequence(
    embedded_env: dict[str, str], tmp_path: Path
) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    result = lapse(
        "simulate",
        "--days",
        "90",
        "--start",
        "2026-03-01T09:00",
        "--json",
        env=embedded_env | {"TMPDIR": str(scratch)},
    )

    assert result.returncode == 0, result.stderr
    # The sample billing it wrote for the start is gone with it (each run left one).
    assert list(scratch.iterdir()) == []
    steps = [step for step in json.loads(result.stdout) if step["account_id"] == "cobalt"]
    # cobalt's invoice fell due 4 days before the start: reminder 1 at once (catch-up),
    # then days 10, 17, the final notice on day 28, suspension 7 days later, removal
    # warnings 14 and 3 days before deletion, deletion 30 days after suspension.
    assert [(step["at"][:10], step["to_state"]) for step in steps] == [
        ("2026-03-01", "overdue"),
        ("2026-03-01", "reminded(1)"),
        ("2026-03-07", "reminded(2)"),
        ("2026-03-14", "reminded(3)"),
        ("2026-03-25", "final-notice"),
        ("2026-04-01", "suspended"),
        ("2026-04-17", "removal-warned(1)"),
        ("2026-04-28", "removal-warned(2)"),
        ("2026-05-01", "deleted"),
    ]
    # The suspension notice follows the suspend phase, which a simulation does not run.
    assert steps[5]["actions"] == ["playbook:suspend"]


def test_plan_lists_upcoming_steps_without_changing_anything(
    tmp_path: Path, embedded_env: dict[str, str]
) -> None:
    first_sync(tmp_path, embedded_env)
    before = lapse("accounts", "--json", env=embedded_env).stdout

    result = lapse("plan", "--days", "14", "--json", env=embedded_env)

    assert result.returncode == 0, result.stderr
    steps = json.loads(result.stdout)
    echo = [step for step in steps if step["account_id"] == "echo"]
    # Reminded at the first sync: the final notice after the gap, then the suspension at
    # the very instant the final notice names (the policy's one computed instant).
    assert [step["to_state"] for step in echo[:2]] == ["final-notice", "suspended"]
    named = echo[0]["reason"].split("suspension set for ")[1].split(",")[0]
    assert echo[1]["at"].startswith(named.replace(" UTC", "").replace(" ", "T"))
    assert lapse("accounts", "--json", env=embedded_env).stdout == before


def first_sync(tmp_path: Path, env: dict[str, str]) -> None:
    """Run the embedded daemon until its first billing sync is done, then stop it."""
    daemon = start_daemon_embedded(tmp_path, env)
    log = tmp_path / "daemon.log"
    try:
        wait_for(lambda: "billing sync done" in log.read_text(), 60, "the first sync")
    finally:
        assert stop_daemon(daemon, signal.SIGTERM) == 0


def start_daemon_embedded(tmp_path: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start `lapse run` with no config file: the embedded defaults."""
    return start_daemon(None, tmp_path / "daemon.log", env=env)


def test_notices_preview_writes_in_the_clients_language(
    tmp_path: Path, embedded_env: dict[str, str]
) -> None:
    first_sync(tmp_path, embedded_env)

    french = lapse("notices", "preview", "cobalt", "--type", "reminder", env=embedded_env)
    german = lapse("notices", "preview", "acme", "--type", "final", "--html", env=embedded_env)

    assert french.returncode == 0, french.stderr
    assert "Content-Language: fr" in french.stdout
    assert "Subject: Rappel 1" in french.stdout and "Bonjour Chloé Martin" in french.stdout
    assert "38,90" in french.stdout  # 24.90 + 14.00 EUR, written the French way
    assert german.returncode == 0, german.stderr
    assert "Content-Language: de" in german.stdout and '<html lang="de">' in german.stdout


def test_notices_show_prints_the_message_as_sent_and_preview_sends_nothing(
    tmp_path: Path, embedded_env: dict[str, str]
) -> None:
    first_sync(tmp_path, embedded_env)
    outbox = tmp_path / "data" / "outbox"
    history = json.loads(lapse("history", "echo", "--json", env=embedded_env).stdout)
    detail = next(entry["detail"] for entry in history if entry["kind"] == "notice (sent)")
    letter_id = detail.split()[1]  # "notice 3 to ..."

    shown = subprocess.run(
        [LAPSE, "notices", "show", letter_id], capture_output=True, env=embedded_env, check=False
    )

    assert shown.returncode == 0, shown.stderr
    sent = [path.read_bytes() for path in outbox.glob("*.eml")]
    assert shown.stdout in sent
    before = sorted(outbox.iterdir())
    preview = lapse("notices", "preview", "echo", "--type", "final", env=embedded_env)
    assert preview.returncode == 0, preview.stderr
    assert "Subject: Final notice" in preview.stdout
    assert "¥3,850" in preview.stdout  # the sample invoice, in yen without decimals
    assert "JST" in preview.stdout
    assert sorted(outbox.iterdir()) == before
    missing = lapse("notices", "show", "999", env=embedded_env)
    assert missing.returncode == 3
    assert "no notice with id 999" in missing.stderr


@pytest.mark.parametrize(
    "command",
    [["backups", "acct-1001"], ["restore", "acct-1001", "--dry-run"], ["history", "acct-1001"]],
)
def test_a_command_runs_with_the_collector_on_and_its_start_frozen(
    embedded_env: dict[str, str], command: list[str]
) -> None:
    """The console entry holds the collector off while the command starts; once the app
    (or a restore's parts, or the read models) is built it is on again, what starting
    built frozen. A command left with it off would never collect a cycle."""
    assert lapse("run", "--once", env=embedded_env).returncode == 0
    code = f"""
        import atexit, gc, sys
        from daemon.cli import entry
        frozen = lambda: gc.get_freeze_count() > 1000
        atexit.register(lambda: print("collector", gc.isenabled(), frozen(), file=sys.stderr))
        entry.main({command!r})
    """
    done = python(code, env=embedded_env)
    assert "collector True True" in done.stderr, done.stderr
