"""A secret written in the config (inside a URL, or in place of a secret reference) is
refused with the key named and where it belongs, and no message repeats it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from daemon.config.load import ConfigError, validate_config
from daemon.config.plaintext import has_url_secret, mask

SECRET = "Zq7-s3cret-Xw"

BASE: dict[str, Any] = {
    "state": {"url": "sqlite:///state.db"},
    "billing": {"type": "file", "path": "billing.json"},
    "backup": {"store": {"type": "local", "path": "backups"}},
    "notices": {"notifier": {"type": "outbox", "path": "outbox"}},
}

CASES: dict[str, tuple[dict[str, Any], str, str]] = {
    # name: (override, key named, where the secret belongs)
    "state url": (
        {"state": {"url": f"postgresql://lapse:{SECRET}@db/lapse"}},
        "state.url",
        "state.password",
    ),
    "state url query": (
        {"state": {"url": f"postgresql://lapse@db/lapse?password={SECRET}"}},
        "state.url",
        "state.password",
    ),
    "sql billing url": (
        {
            "billing": {
                "type": "sql",
                "url": f"mysql+pymysql://lapse:{SECRET}@db/whmcs",
                "query": "SELECT 1",
            }
        },
        "billing.url",
        "billing.password",
    ),
    "http billing url": (
        {"billing": {"type": "http", "url": f"https://lapse:{SECRET}@billing.example.com/a"}},
        "billing.url",
        "billing.auth",
    ),
    "s3 endpoint": (
        {
            "backup": {
                "store": {
                    "type": "s3",
                    "bucket": "b",
                    "endpoint_url": f"https://key:{SECRET}@s3.example.com",
                }
            }
        },
        "backup.store.endpoint_url",
        "secret_access_key",
    ),
    "smtp host": (
        {"notices": {"notifier": {"type": "smtp", "host": f"smtp://me:{SECRET}@mail.example.com"}}},
        "notices.notifier.host",
        "notices.notifier.username and password",
    ),
    "host vars": (
        {
            "hosts": {
                "web1": {
                    "transport": "local",
                    "playbook": "demo",
                    "allowed_roots": ["/srv"],
                    "vars": {"portal": f"https://ops:{SECRET}@portal.example.com"},
                }
            }
        },
        "hosts.web1.vars.portal",
        "env",
    ),
    "plain state password": (
        {"state": {"url": "sqlite:///s.db", "password": SECRET}},
        "state.password",
        "env",
    ),
    "plain smtp password": (
        {"notices": {"notifier": {"type": "smtp", "host": "mail.example.com", "password": SECRET}}},
        "notices.notifier.password",
        "env",
    ),
    "plain webhook secret": ({"webhooks": {"hmac_secret": SECRET}}, "webhooks.hmac_secret", "file"),
    "secret as a list": (
        {"webhooks": {"stripe_secret": [SECRET]}},
        "webhooks.stripe_secret",
        "env",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_secret_in_the_config_is_named_and_never_repeated(case: str, tmp_path: Path) -> None:
    override, key, home = CASES[case]
    raw = BASE | override

    with pytest.raises(ConfigError) as refused:
        validate_config(raw, "lapse.toml", tmp_path)

    problems = refused.value.problems
    assert any(
        problem.startswith(f"lapse.toml: at '{key}': ") and home in problem for problem in problems
    ), problems
    assert SECRET not in str(refused.value)
    assert all(SECRET not in problem for problem in problems)


def test_secret_references_and_plain_urls_are_accepted(tmp_path: Path) -> None:
    raw = BASE | {
        "state": {
            "url": "postgresql+psycopg://lapse@db:5432/lapse?sslmode=require",
            "password": {"env": "X"},
        },
        "notices": {
            "notifier": {
                "type": "smtp",
                "host": "mail.example.com",
                "username": "lapse",
                "password": {"file": "pw"},
            }
        },
    }
    config = validate_config(raw, "lapse.toml", tmp_path)
    assert config.state.url.endswith("sslmode=require")


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("postgresql://u:pw@h/db", "postgresql://u:***@h/db"),
        ("postgresql://:pw@h/db", "postgresql://:***@h/db"),
        ("https://h/x?a=1&token=abc&b=2", "https://h/x?a=1&token=***&b=2"),
        ("see postgresql://u@h/db", "see postgresql://u@h/db"),
        ("mailto:someone@example.com", "mailto:someone@example.com"),
    ],
)
def test_mask(text: str, masked: str) -> None:
    assert mask(text) == masked
    assert has_url_secret(text) == (text != masked)
