"""`lapse check-config --deep`: reach every part the config names, as the daemon would.

A config can be valid and still unusable: a secret file missing, a host whose key
changed, a bucket the credentials cannot write. Each probe here does the least that
proves its part works, and reports OK or the reason in one line, so `lapse run` does not
find out at start (or at the first deletion):

- every secret is read (`SecretRef.reveal`);
- the state database is opened (it must exist: `lapse migrate` creates it);
- the billing source is read once, in full;
- each host runs `true` (over SSH, the host key checked against `known_hosts`);
- the backup store writes, reads back and deletes a small object under `lapse-probe/`;
- the SMTP server answers EHLO (and STARTTLS) and accepts the login; an outbox
  directory is writable.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from daemon.backup.stores import create_store
from daemon.billing.dispatch import create_source
from daemon.config.schema import (
    BillingConfig,
    Config,
    HostConfig,
    NotifierConfig,
    OutboxNotifier,
    StateConfig,
    StoreConfig,
)
from daemon.config.secrets import SecretRef
from daemon.domain.errors import LapseError
from daemon.notices.delivery.smtp import SmtpDelivery
from daemon.runtime.state import describe_state, open_state
from daemon.transport import Transports

# Probe objects go under this prefix of the backup store, apart from any account's.
PROBE_PREFIX = "lapse-probe/"


@dataclass(frozen=True)
class Probe:
    """One part of the config, reached or not: `detail` says what was done, or why not."""

    part: str
    ok: bool
    detail: str


def deep_check(config: Config) -> list[Probe]:
    """Reach every part `config` names; return one Probe per part, in the order above.
    Never raises for a part that fails: that is a Probe with `ok` false."""
    hosts = sorted(config.hosts.items())
    return [
        *probe_secrets(config),
        _probe("state database", lambda: probe_state(config.state)),
        _probe(f"billing ({config.billing.type})", lambda: probe_billing(config.billing)),
        *(_probe(f"host {name}", partial(probe_host, name, host)) for name, host in hosts),
        _probe(
            f"backup store ({config.backup.store.type})",
            lambda: probe_store(config.backup.store),
        ),
        _probe(
            f"notices ({config.notices.notifier.type})",
            lambda: probe_notifier(config.notices.notifier),
        ),
    ]


def probe_secrets(config: Config) -> list[Probe]:
    """Read every secret the config names, each a Probe named by its key path."""
    return [_probe(f"secret {path}", partial(_reveal, ref)) for path, ref in secret_refs(config)]


def secret_refs(value: Any, path: str = "") -> Iterator[tuple[str, SecretRef]]:
    """Yield (key path, SecretRef) for every secret under `value` (a config or a part)."""
    if isinstance(value, SecretRef):
        yield path, value
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from secret_refs(getattr(value, name), f"{path}.{name}" if path else name)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from secret_refs(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from secret_refs(item, f"{path}[{index}]")


def probe_state(state: StateConfig) -> str:
    """Open the state database (which must exist) and say which it is."""
    engine, _ = open_state(state, create=False)
    engine.dispose()
    return describe_state(state)


def probe_billing(billing: BillingConfig) -> str:
    """Read the billing source once; say how many accounts it gave."""
    source = create_source(billing)
    try:
        result = source.fetch_all()
    finally:
        source.close()
    skipped = f", {len(result.errors)} row(s) skipped" if result.errors else ""
    return f"{len(result.snapshots)} account(s) read{skipped}"


def probe_host(name: str, host: HostConfig) -> str:
    """Run `true` on the host (an SSH connection checks the host key first)."""
    transports = Transports({name: host})
    try:
        transports.get(name).run("true", label="check-config probe")
    finally:
        transports.close()
    if host.transport == "local":
        return "local commands run"
    return f"ssh {host.user}@{host.address}:{host.port}, host key known, `true` ran"


def probe_store(config: StoreConfig) -> str:
    """Write, read back and delete a small object under PROBE_PREFIX."""
    store = create_store(config)
    key = f"{PROBE_PREFIX}{secrets.token_hex(8)}"
    data = b"lapse check-config probe " + key.encode()
    store.put(key, data)
    try:
        read = store.read(key)
    finally:
        store.delete(key)
    if read != data:
        raise ProbeError(f"{store.describe(key)} read back differs from what was written")
    return f"wrote, read back and deleted {store.describe(key)}"


def probe_notifier(notifier: NotifierConfig) -> str:
    """Log in to the SMTP server, or check that the outbox directory is writable."""
    if isinstance(notifier, OutboxNotifier):
        return _writable(notifier.path)
    return SmtpDelivery(notifier, timeout=15).probe()


class ProbeError(LapseError):
    """A part answered, but not as it should (a probe object read back different)."""


def _probe(part: str, attempt: Callable[[], str]) -> Probe:
    try:
        return Probe(part, True, attempt())
    except (LapseError, KeyError, OSError) as error:
        # KeyError: Transports names an unknown host so; OSError: a path refused.
        return Probe(part, False, str(error).strip("'\""))


def _reveal(ref: SecretRef) -> str:
    ref.reveal()
    return f"read from {str(ref).strip('<>').removeprefix('secret from ')}"


def _writable(directory: Path) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    probe = directory / f".lapse-probe-{secrets.token_hex(4)}"
    probe.write_bytes(b"")
    probe.unlink()
    return f"outbox {directory} is writable"
