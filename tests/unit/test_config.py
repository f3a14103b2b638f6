"""The config schema, its error messages, durations and secrets."""

from __future__ import annotations

import re
import typing
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from daemon.config import ConfigError, load_config
from daemon.config.durations import format_duration, parse_duration
from daemon.config.schema import Config
from daemon.config.secrets import SecretError, SecretRef

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config.example.toml"

MINIMAL = """
[state]
url = "sqlite:///state.db"
[billing]
type = "file"
path = "billing.json"
[backup.store]
type = "local"
path = "backups"
[notices.notifier]
type = "outbox"
path = "outbox"
"""


def _models(model: type[BaseModel]) -> typing.Iterator[type[BaseModel]]:
    yield model
    for field in model.model_fields.values():
        for inner in _inner_types(field.annotation):
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                yield from _models(inner)


def _inner_types(annotation: Any) -> typing.Iterator[Any]:
    args = typing.get_args(annotation)
    if not args:
        yield annotation
        return
    for arg in args:
        yield from _inner_types(arg)


ALL_MODELS = list(dict.fromkeys(_models(Config)))


def test_example_config_is_valid() -> None:
    config = load_config(EXAMPLE)
    assert config.billing.type == "file"
    assert config.policy_for("business").notice_period == timedelta(days=14)
    assert config.policy_for("business").final_notice_offset == timedelta(days=28)


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.__name__)
def test_every_option_is_described_with_an_example(model: type[BaseModel]) -> None:
    for name, field in model.model_fields.items():
        assert field.description, f"{model.__name__}.{name} has no description"
        assert field.examples, f"{model.__name__}.{name} has no example"


def test_example_config_mentions_every_option() -> None:
    text = EXAMPLE.read_text()
    mentioned = set(re.findall(r"([a-z_]+)\s*=", text))
    mentioned |= set(re.findall(r"\[([a-z0-9_.]+)\]", text))
    mentioned = {part for entry in mentioned for part in entry.split(".")}
    for model in ALL_MODELS:
        for name in model.model_fields:
            assert name in mentioned, f"config.example.toml does not show '{name}'"


def test_all_problems_are_reported_at_once_with_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "lapse.toml"
    path.write_text(
        MINIMAL
        + """
[policy.default]
notice_period = "seven"
reminder_offsets = ["3d", "soon"]
colour = "blue"
[hosts.web1]
transport = "ftp"
playbook = "nginx-linux"
"""
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == [
        f"{path}: at 'policy.default.reminder_offsets[1]': "
        'expected a duration like "7d", "36h" or "90m", got \'soon\'',
        f"{path}: at 'policy.default.notice_period': "
        'expected a duration like "7d", "36h" or "90m", got \'seven\'',
        f"{path}: at 'policy.default.colour': unknown option",
        f"{path}: at 'hosts.web1.transport': expected one of 'local' or 'ssh', got 'ftp'",
    ]


def test_tagged_tables_report_the_key_the_operator_wrote(tmp_path: Path) -> None:
    path = tmp_path / "lapse.toml"
    path.write_text(MINIMAL.replace('path = "billing.json"', 'path = "b.json"\nquery = 1'))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == [f"{path}: at 'billing.query': unknown option"]


def test_unknown_billing_type_names_the_choices(tmp_path: Path) -> None:
    path = tmp_path / "lapse.toml"
    path.write_text(MINIMAL.replace('type = "file"', 'type = "ldap"'))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == [
        f"{path}: at 'billing.type': expected 'type' to be one of 'file', 'sql', 'http',"
        " 'whmcs', 'stripe', got 'ldap'"
    ]


def test_broken_toml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "lapse.toml"
    path.write_text("[state\nurl=")
    with pytest.raises(ConfigError, match=re.escape(f"{path}: not valid TOML")):
        load_config(path)


def test_relative_paths_resolve_against_the_config_directory(tmp_path: Path) -> None:
    path = tmp_path / "lapse.toml"
    path.write_text(MINIMAL)
    config = load_config(path)
    assert config.billing.path == tmp_path / "billing.json"  # type: ignore[union-attr]


def test_timeline_out_of_order_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "lapse.toml"
    path.write_text(MINIMAL + '[policy.default]\nremoval_warnings = ["3d", "14d"]\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == [
        f"{path}: at 'policy.default': 'removal_warnings' must go from the earliest "
        "(largest) to the latest"
    ]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("14d", timedelta(days=14)),
        ("36h", timedelta(hours=36)),
        ("1d12h", timedelta(hours=36)),
        ("90m", timedelta(minutes=90)),
        ("2w", timedelta(weeks=2)),
        ("45s", timedelta(seconds=45)),
    ],
)
def test_durations_parse(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["seven", "7", "7x", "", "-3d", 7])
def test_bad_durations_are_refused(text: object) -> None:
    with pytest.raises(ValueError, match="expected a duration like"):
        parse_duration(text)


def test_durations_format_back() -> None:
    assert format_duration(timedelta(hours=36)) == "1d12h"
    assert format_duration(timedelta(0)) == "0s"


def test_secret_from_env_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAPSE_TEST_SECRET", "s3cr3t")
    secret_file = tmp_path / "pw"
    secret_file.write_text("from-file\n")
    assert SecretRef(env="LAPSE_TEST_SECRET").reveal() == "s3cr3t"
    assert SecretRef(file=secret_file).reveal() == "from-file"
    assert "s3cr3t" not in repr(SecretRef(env="LAPSE_TEST_SECRET"))


def test_missing_secret_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LAPSE_NOT_SET", raising=False)
    with pytest.raises(SecretError, match="environment variable LAPSE_NOT_SET is not set"):
        SecretRef(env="LAPSE_NOT_SET").reveal()


def test_secret_needs_exactly_one_source(tmp_path: Path) -> None:
    path = tmp_path / "lapse.toml"
    path.write_text(MINIMAL + '[state.password]\nenv = "A"\nfile = "/x"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == [
        f"{path}: at 'state.password': expected exactly one of 'env' or 'file'"
    ]


def test_module_types_are_walked() -> None:
    """Guard for the walkers above: they see the nested tables."""
    names = {model.__name__ for model in ALL_MODELS}
    assert {"PolicyConfig", "HostConfig", "S3Store", "SmtpNotifier", "HttpAuth"} <= names
