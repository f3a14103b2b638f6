"""Read a TOML config file, validate it, and report every problem at once."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from daemon.config.plaintext import is_secret_path, mask, url_secret_problems
from daemon.config.schema import ALL_WEEKDAYS, Config
from daemon.domain.errors import LapseError

# Keys whose value is a table picked by its 'type': pydantic puts the tag in the
# error location ('billing', 'file', 'path'); operators wrote 'billing.path'.
_TAGGED_TABLES = {"billing", "store", "notifier"}

_FRIENDLY = {
    "missing": "missing required option",
    "int_parsing": "expected a whole number",
    "int_type": "expected a whole number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "string_type": "expected a string",
    "decimal_parsing": "expected a number",
    "decimal_type": "expected a number",
    "list_type": "expected a list",
    "dict_type": "expected a table",
    "model_type": "expected a table",
}


class ConfigError(LapseError):
    """The configuration cannot be used. `problems` lists one sentence per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def load_config(path: Path) -> Config:
    """Load and validate the TOML config at `path`.

    Returns the validated `Config`, relative paths resolved against the file's directory.
    Raises ConfigError listing every problem, each naming the file and key path.
    """
    return validate_config(read_toml(path), source=str(path), base_dir=path.parent)


def read_toml(path: Path) -> dict[str, Any]:
    """Parse the TOML file at `path`. Raises ConfigError naming the file and the problem."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError([f"{path}: cannot read: {error.strerror}"]) from error
    except tomllib.TOMLDecodeError as error:
        raise ConfigError([f"{path}: not valid TOML: {error}"]) from error


def validate_config(raw: Mapping[str, Any], source: str, base_dir: Path) -> Config:
    """Validate a config mapping.

    Takes the parsed TOML, the name to cite in errors, and the directory that
    relative paths are resolved against. Returns the Config; raises ConfigError.
    """
    # Secrets written in plain text are refused (invariant 8), and named without being
    # repeated: every message below is masked, as pydantic's quote the values they refuse.
    problems = [f"{source}: at '{key}': {message}" for key, message in url_secret_problems(raw)]
    try:
        config = Config.model_validate(_resolve_paths(raw, base_dir))
    except ValidationError as error:
        problems += [mask(format_error(source, detail)) for detail in error.errors()]
    if problems:
        raise ConfigError(problems)
    return config


def load_embedded_config(data_dir: Path | None = None) -> Config:
    """Return the embedded defaults: SQLite, sample billing, local host, local store, outbox.

    `data_dir` defaults to $LAPSE_DATA_DIR or ~/.local/state/lapse.
    """
    data_dir = data_dir or default_data_dir()
    raw = {
        "state": {"url": f"sqlite:///{data_dir / 'state.db'}"},
        "billing": {"type": "file", "path": str(data_dir / "sample-billing.json")},
        "hosts": {
            "localhost": {
                "transport": "local",
                "playbook": "demo",
                "allowed_roots": [str(data_dir / "sites")],
            }
        },
        "backup": {"store": {"type": "local", "path": str(data_dir / "backups")}},
        "notices": {"notifier": {"type": "outbox", "path": str(data_dir / "outbox")}},
        # A short sync interval so the demo visibly moves within a minute.
        "daemon": {"sync_interval": "20s"},
        # The demo writes to its sample clients at any hour, so it shows its work whenever
        # it is started; a real config keeps the default contact hours.
        "policy": {
            "default": {"quiet_hours": "", "contact_days": list(ALL_WEEKDAYS)},
            # One sample account is on this plan so the demo suspends a site (backup,
            # maintenance page) within its first minute; nobody else gets 10 s notice.
            "express": {
                "reminder_offsets": [],
                "final_notice_offset": "1d",
                "notice_period": "10s",
                "min_contact_gap": "0s",
            },
        },
    }
    return validate_config(raw, source="<embedded defaults>", base_dir=data_dir)


def default_data_dir() -> Path:
    """Return where the embedded defaults keep their data."""
    explicit = os.environ.get("LAPSE_DATA_DIR")
    if explicit:
        return Path(explicit)
    state_home = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state_home) / "lapse"


def format_error(source: str, detail: ErrorDetails) -> str:
    """Turn one pydantic error into `FILE: at 'a.b.c': expected ..., got ...`.

    A value at or under a secret key (daemon.config.plaintext.SECRET_KEYS) is never
    quoted: it may be the secret itself.
    """
    loc = _key_path(detail["loc"])
    kind = detail["type"]
    secret = is_secret_path(detail["loc"])
    got = "" if secret else f", got {detail['input']!r}"
    if is_secret_path(detail["loc"][-1:]) and not isinstance(detail["input"], Mapping):
        # Not a table: the value refused here may be the secret itself. Say where it
        # goes, not what it is.
        message = (
            'expected where the secret lives, { env = "VARIABLE" } or { file = "/path" }; '
            "a secret is never written in the config itself"
        )
    elif kind == "extra_forbidden":
        message = "unknown option"
    elif kind == "union_tag_invalid":
        ctx = detail.get("ctx", {})
        message = f"expected 'type' to be one of {ctx.get('expected_tags')}, got {ctx.get('tag')!r}"
        loc = f"{loc}.type" if loc else "type"
    elif kind == "union_tag_not_found":
        message = "missing required option 'type'"
    elif kind == "literal_error":
        expected = detail.get("ctx", {}).get("expected", "")
        message = f"expected one of {expected}{got}"
    elif kind == "value_error":
        message = str(detail.get("ctx", {}).get("error", detail["msg"]))
    elif kind in _FRIENDLY:
        message = _FRIENDLY[kind]
        if kind != "missing":
            message += got
    else:
        message = f"{detail['msg']}{got}"
    where = f"at '{loc}'" if loc else "at the top level"
    return f"{source}: {where}: {message}"


def _key_path(loc: Iterable[int | str]) -> str:
    parts: list[str] = []
    skip_next = False
    for part in loc:
        if skip_next:
            skip_next = False
            continue
        parts.append(f"[{part}]" if isinstance(part, int) else str(part))
        if part in _TAGGED_TABLES:
            skip_next = True
    return ".".join(parts).replace(".[", "[")


_PATH_KEYS = {"path", "key_file", "known_hosts", "file", "templates_dir", "playbooks_dir"}


def _resolve_paths(value: Any, base_dir: Path, key: str = "") -> Any:
    """Return `value` with relative paths under path-like keys made absolute against base_dir."""
    if isinstance(value, Mapping):
        return {k: _resolve_paths(v, base_dir, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_paths(v, base_dir, key) for v in value]
    if (key in _PATH_KEYS or key == "allowed_roots") and isinstance(value, str):
        path = Path(value).expanduser()
        return str(path if path.is_absolute() else base_dir / path)
    return value
