"""Console sign-in rules: argon2 passwords, the proxy header believed only from trusted
proxies, roles, and the sign-in throttle's window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from daemon.config.load import ConfigError, validate_config
from daemon.config.schema import ConsoleConfig
from daemon.runtime.console.auth import Authenticator, hash_password
from daemon.runtime.console.throttle import LoginThrottle

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
CONFIG = ConsoleConfig.model_validate(
    {
        "users": {
            "alice": {"password_hash": hash_password("right"), "role": "operator"},
            "sam": {"password_hash": hash_password("also-right")},
        },
        "proxy_header": "X-Forwarded-User",
        "trusted_proxies": ["127.0.0.1", "10.0.0.0/24"],
    }
)


def test_a_password_signs_in_only_its_user() -> None:
    auth = Authenticator(CONFIG)
    alice = auth.check_password("alice", "right")
    assert alice is not None and (alice.role, alice.can_act) == ("operator", True)
    assert alice.actor == "console:alice"
    assert auth.check_password("alice", "also-right") is None
    assert auth.check_password("nobody", "right") is None
    sam = auth.check_password("sam", "also-right")
    assert sam is not None and (sam.role, sam.can_act) == ("viewer", False)


def test_the_proxy_header_is_believed_only_from_a_trusted_proxy() -> None:
    auth = Authenticator(CONFIG)
    headers = {"X-Forwarded-User": "alice"}
    assert auth.from_proxy("127.0.0.1", headers) is not None
    assert auth.from_proxy("10.0.0.7", headers) is not None
    assert auth.from_proxy("10.0.1.7", headers) is None
    assert auth.from_proxy("192.0.2.1", headers) is None
    assert auth.from_proxy("127.0.0.1", {}) is None
    assert auth.from_proxy("not an address", headers) is None


def test_a_proxied_user_has_their_listed_role_else_the_proxy_role() -> None:
    auth = Authenticator(CONFIG)
    listed = auth.from_proxy("127.0.0.1", {"X-Forwarded-User": "alice"})
    unlisted = auth.from_proxy("127.0.0.1", {"X-Forwarded-User": "dana"})
    assert listed is not None and listed.role == "operator"
    assert unlisted is not None and (unlisted.role, unlisted.via) == ("viewer", "proxy")


def test_without_a_proxy_header_configured_no_header_is_believed() -> None:
    auth = Authenticator(ConsoleConfig(trusted_proxies=["127.0.0.1"]))
    assert auth.from_proxy("127.0.0.1", {"X-Forwarded-User": "alice"}) is None


def test_a_password_hash_that_is_not_argon2_is_refused_without_quoting_it() -> None:
    raw = {
        "state": {"url": "sqlite:///state.db"},
        "billing": {"type": "file", "path": "billing.json"},
        "backup": {"store": {"type": "local", "path": "backups"}},
        "notices": {"notifier": {"type": "outbox", "path": "outbox"}},
        "console": {"users": {"bo": {"password_hash": "hunter2"}}},
    }
    with pytest.raises(ConfigError) as refused:
        validate_config(raw, "config.toml", Path("."))
    assert str(refused.value) == (
        "config.toml: at 'console.users.bo': 'password_hash' is not an argon2 hash: "
        "lapse console hash-password"
    )


def test_the_throttle_counts_per_user_and_per_address_within_its_window() -> None:
    throttle = LoginThrottle(2, timedelta(minutes=15))
    throttle.failed("alice", "192.0.2.1", NOW)
    throttle.failed("alice", "192.0.2.2", NOW)
    assert not throttle.allowed("alice", "192.0.2.3", NOW)  # the user name is spent
    assert not throttle.allowed("ALICE", "192.0.2.3", NOW)
    assert throttle.allowed("bob", "192.0.2.3", NOW)
    throttle.failed("bob", "192.0.2.9", NOW)
    throttle.failed("carol", "192.0.2.9", NOW)
    assert not throttle.allowed("dave", "192.0.2.9", NOW)  # the address is spent
    later = NOW + timedelta(minutes=15)
    assert throttle.allowed("alice", "192.0.2.3", later)
    assert throttle.allowed("dave", "192.0.2.9", later)
