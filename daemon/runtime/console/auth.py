"""Who is signed in to the console: local users with argon2 password hashes, or a user
named by a trusted reverse proxy's header, and what their role lets them do."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from daemon.config.schema import ConsoleConfig

_HASHER = PasswordHasher()
# Checked against when the user name is unknown, so a wrong name takes as long as a
# wrong password and the answer does not tell which names exist.
_DUMMY_HASH = _HASHER.hash("lapse-console-no-such-user")
OPERATOR = "operator"


def hash_password(password: str) -> str:
    """Return the argon2id hash of `password` for a `[console.users]` entry."""
    return _HASHER.hash(password)


@dataclass(frozen=True)
class Identity:
    """A signed-in person: their name, role ('viewer' or 'operator') and how they signed in."""

    name: str
    role: str
    via: str

    @property
    def can_act(self) -> bool:
        """Whether the role may change anything (operators only)."""
        return self.role == OPERATOR

    @property
    def actor(self) -> str:
        """How the person is named in events and the audit log."""
        return f"console:{self.name}"


class Authenticator:
    """Checks passwords and the trusted proxy header against the `[console]` section."""

    def __init__(self, config: ConsoleConfig) -> None:
        self.config = config
        self._proxies = [ipaddress.ip_network(net, strict=False) for net in config.trusted_proxies]

    def check_password(self, name: str, password: str) -> Identity | None:
        """Return the identity of local user `name` if `password` is theirs, else None."""
        user = self.config.users.get(name)
        try:
            _HASHER.verify(user.password_hash if user else _DUMMY_HASH, password)
        except (VerificationError, InvalidHashError):
            return None
        if user is None:
            return None
        return Identity(name, user.role, "password")

    def local_user(self, name: str) -> Identity | None:
        """The identity of local user `name` as the config has them now (None once removed)."""
        user = self.config.users.get(name)
        return Identity(name, user.role, "password") if user else None

    def from_proxy(self, peer: str | None, headers: Mapping[str, str]) -> Identity | None:
        """Return the user the proxy header names, when the header is configured and the
        request comes from a trusted proxy; None otherwise (the header is then ignored)."""
        header = self.config.proxy_header
        if header is None or peer is None or not self._trusted(peer):
            return None
        name = headers.get(header, "").strip()
        if not name:
            return None
        user = self.config.users.get(name)
        return Identity(name, user.role if user else self.config.proxy_role, "proxy")

    def _trusted(self, peer: str) -> bool:
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self._proxies)
