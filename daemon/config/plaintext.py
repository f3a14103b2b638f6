"""Secrets written in plain text in a config: found, named by key, and never repeated.

Secrets belong in the environment or in files the config names (`{ env = "VAR" }`
or `{ file = "/path" }`, see daemon.config.secrets). A password inside a URL
(`postgresql://lapse:secret@db/lapse`, `?password=...`) or a plain string where a
secret reference is expected is refused by `lapse check-config` and at start-up;
the error names the key and says where the secret belongs, without the secret.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

# scheme://user:password@ — the userinfo part of a URL, password non-empty.
_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/@\s:]*):(?P<secret>[^/@\s]+)@")
# A credential passed as a query parameter (libpq's `password=`, signed-URL keys, tokens).
_QUERY = re.compile(
    r"(?P<head>[?&;](?:password|passwd|pwd|sslpassword|secret|token|access_token|api_key|apikey"
    r"|access_key|secret_access_key|key)=)(?P<secret>[^&;#\s]+)",
    re.IGNORECASE,
)
# Keys whose value is a secret reference, in the config and in playbooks: a plain string
# there is the secret itself. A test keeps it in step with every SecretRef field of both
# schemas; no error message quotes a value found at or under one of these keys.
SECRET_KEYS = frozenset(
    {
        "bearer",
        "password",
        "secret",
        "token",
        "api_key",
        "identifier",
        "access_key_id",
        "secret_access_key",
        "stripe_secret",
        "hmac_secret",
        "session_secret",
    }
)
# Where the secret of a URL-valued key goes instead, by the key's path.
_HOMES = {
    "state.url": "state.password",
    "billing.url": "billing.password (sql) or billing.auth (http)",
    "backup.store.endpoint_url": "backup.store.access_key_id and secret_access_key",
    "notices.notifier.host": "notices.notifier.username and password",
}


def mask(text: str) -> str:
    """Return `text` with every password inside a URL replaced by '***'."""
    text = _USERINFO.sub(r"\g<head>:***@", text)
    return _QUERY.sub(r"\g<head>***", text)


def has_url_secret(text: str) -> bool:
    """Return whether `text` holds a URL with a password in its user info or query."""
    return _USERINFO.search(text) is not None or _QUERY.search(text) is not None


def url_secret_problems(raw: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Return (key path, message) for every string value of the config holding a URL with
    a password. The messages name where the secret belongs and never contain it."""
    problems = []
    for key, value in _strings(raw, ()):
        if has_url_secret(value):
            home = _HOMES.get(key, "a secret reference next to it")
            problems.append(
                (
                    key,
                    f"a password is written inside the URL ({mask(value)}): take it out of "
                    f'the URL and give it in {home} as {{ env = "VARIABLE" }} or '
                    f'{{ file = "/etc/lapse/..." }}',
                )
            )
    return problems


def is_secret_path(loc: Iterable[int | str]) -> bool:
    """Return whether a config or playbook key path leads to (or into) a secret
    reference: a value found there must never be quoted."""
    return any(part in SECRET_KEYS for part in loc if isinstance(part, str))


def _strings(value: Any, path: tuple[str, ...]) -> Iterator[tuple[str, str]]:
    """Yield (dotted key path, text) for every string in a parsed TOML value."""
    if isinstance(value, str):
        yield ".".join(path), value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(item, (*path, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(
                item, (*path[:-1], f"{path[-1]}[{index}]") if path else (f"[{index}]",)
            )
