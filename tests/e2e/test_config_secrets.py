"""`lapse check-config` and `lapse run` refuse a config with passwords written in URLs,
naming each key, and their whole output never holds one of the passwords."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.daemon_process import lapse

SECRETS = ("pw-state-91c", "pw-billing-4ae", "pw-s3-7d2", "pw-smtp-e05", "pw-plain-b18")


def test_passwords_in_the_config_are_named_never_shown(tmp_path: Path) -> None:
    config = tmp_path / "lapse.toml"
    config.write_text(
        f"""
[state]
url = "postgresql://lapse:{SECRETS[0]}@127.0.0.1:1/lapse"
[billing]
type = "sql"
url = "postgresql+psycopg://lapse@127.0.0.1:1/billing?password={SECRETS[1]}"
query = "SELECT 1"
[backup.store]
type = "s3"
bucket = "backups"
endpoint_url = "http://key:{SECRETS[2]}@127.0.0.1:1"
[notices.notifier]
type = "smtp"
host = "smtp://lapse:{SECRETS[3]}@127.0.0.1"
password = "{SECRETS[4]}"
"""
    )
    for command in (["check-config"], ["run", "--once"], ["run"], ["migrate"], ["status"]):
        result = lapse(*command, "-c", str(config))

        output = result.stdout + result.stderr
        assert result.returncode == 1, (command, output)
        for secret in SECRETS:
            assert secret not in output, (command, secret)
        for key in ("state.url", "billing.url", "backup.store.endpoint_url"):
            assert f"at '{key}': a password is written inside the URL" in output
        assert "at 'notices.notifier.host'" in output
        assert "at 'notices.notifier.password': expected where the secret lives" in output
    check = lapse("check-config", "-c", str(config))
    assert check.stderr.strip().splitlines()[-1] == "5 problem(s) found"
    # The problems name where the secret belongs.
    assert "give it in state.password as { env = " in check.stderr
