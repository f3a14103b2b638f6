"""Every key that holds a secret, in the config and in playbooks, is refused when a
secret is written there in plain text, and no message ever repeats the value."""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from daemon.config.load import ConfigError
from daemon.config.plaintext import SECRET_KEYS
from daemon.config.schema import Config
from daemon.config.secrets import SecretRef
from daemon.playbooks.library import load_playbook
from daemon.playbooks.schema import Playbook

PLANTED = "hunter2-planted-Qx9"


def secret_fields(model: type[BaseModel], seen: set[type[BaseModel]]) -> Iterator[str]:
    """Yield the name of every field holding a SecretRef in `model` and the models it
    holds, however deep (through unions, lists and mappings)."""
    if model in seen:
        return
    seen.add(model)
    for name, field in model.model_fields.items():
        for kind in annotation_models(field.annotation):
            if kind is SecretRef:
                yield name
            else:
                yield from secret_fields(kind, seen)


def annotation_models(annotation: Any) -> Iterator[type[BaseModel]]:
    """The pydantic models an annotation names, inside unions and containers."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        return
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        yield from annotation_models(typing.get_args(annotation)[0])
        return
    if origin is not None or isinstance(annotation, types.UnionType):
        for argument in typing.get_args(annotation):
            yield from annotation_models(argument)


def test_every_secret_reference_of_both_schemas_is_a_secret_key() -> None:
    """The list the error messages consult misses no key the schemas keep a secret in."""
    found = set(secret_fields(Config, set())) | set(secret_fields(Playbook, set()))
    assert {"bearer", "password", "token", "api_key", "secret"} <= found
    assert found - SECRET_KEYS == set()


def test_the_schema_walk_finds_a_secret_reference_anywhere() -> None:
    """The check above can fail: a model with a secret the list does not know is found."""

    class Inner(BaseModel):
        credential: SecretRef | None = None

    class Outer(BaseModel):
        parts: list[Inner | int] = []

    assert list(secret_fields(Outer, set())) == ["credential"]


def http_step(**secret: Any) -> str:
    """A playbook whose one suspend step is an http call with `secret` among its keys."""
    lines = ["[[suspend]]", 'name = "Disable the portal login"', 'type = "http"']
    lines.append('url = "https://portal.example.com/login"')
    for key, value in secret.items():
        lines.append(f"{key} = {value}")
    return "\n".join(lines) + "\n"


PLAYBOOK_CASES = {
    "bearer as a string": (http_step(bearer=f'"{PLANTED}"'), "suspend[0].bearer"),
    "bearer as a list": (http_step(bearer=f'["{PLANTED}"]'), "suspend[0].bearer"),
    "bearer as a number": (http_step(bearer="7355608"), "suspend[0].bearer"),
    "basic password as a string": (
        http_step(basic=f'{{ user = "admin", password = "{PLANTED}" }}'),
        "suspend[0].basic.password",
    ),
    "bearer table with a stray key": (
        http_step(bearer=f'{{ env = "PORTAL_TOKEN", value = "{PLANTED}" }}'),
        "suspend[0].bearer.value",
    ),
}


@pytest.mark.parametrize("case", PLAYBOOK_CASES)
def test_a_secret_in_a_playbook_is_named_and_never_repeated(case: str, tmp_path: Path) -> None:
    text, key = PLAYBOOK_CASES[case]
    path = tmp_path / "portal.toml"
    path.write_text(text)

    with pytest.raises(ConfigError) as refused:
        load_playbook(path)

    message = str(refused.value)
    assert f"at '{key}'" in message
    assert PLANTED not in message and "7355608" not in message


def test_a_value_under_a_secret_key_of_the_config_is_never_repeated() -> None:
    """Deeper than the key itself (a table with a wrong value inside), still not quoted."""
    from daemon.config.load import format_error

    detail: Any = {
        "type": "string_type",
        "loc": ("state", "password", "env"),
        "msg": "Input should be a valid string",
        "input": [PLANTED],
    }

    message = format_error("config.toml", detail)

    assert message.startswith("config.toml: at 'state.password.env': ")
    assert PLANTED not in message


def test_a_log_line_never_carries_a_secret_keys_value() -> None:
    """The last guard: a value logged under a secret-looking key is masked."""
    from daemon.runtime.logs import _mask_secrets

    # WHMCS's API identifier is refused in plain text in the config, but "identifier"
    # names too many harmless things in log lines to be masked there.
    event = {key: PLANTED for key in sorted(SECRET_KEYS - {"identifier"})}
    masked = _mask_secrets(None, "info", {**event, "event": "step failed", "step": "x"})

    assert PLANTED not in str(masked)
    assert masked["step"] == "x"
