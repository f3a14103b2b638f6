"""Running commands on hosting servers: the `local` and `ssh` transports behind one interface."""

from __future__ import annotations

import threading

from daemon.config.schema import HostConfig
from daemon.transport.base import (
    CommandError,
    CommandResult,
    HostKeyError,
    RemoteProcess,
    Transport,
    TransportError,
)
from daemon.transport.local import LocalTransport

__all__ = [
    "CommandError",
    "CommandResult",
    "HostKeyError",
    "RemoteProcess",
    "Transport",
    "TransportError",
    "Transports",
    "create_transport",
]


def create_transport(name: str, host: HostConfig) -> Transport:
    """Build the transport the config names for host `name` (no connection yet)."""
    if host.transport == "local":
        return LocalTransport(
            name,
            command_timeout=host.command_timeout.total_seconds(),
            max_sessions=host.max_sessions,
        )
    assert host.address is not None and host.known_hosts is not None  # checked by the schema
    # paramiko (and cryptography) are loaded only when an SSH host is configured: some
    # 15 MB a daemon running on the hosting server itself need not pay.
    from daemon.transport.ssh import SSHTransport

    return SSHTransport(
        name,
        host.address,
        port=host.port,
        user=host.user,
        known_hosts=host.known_hosts,
        key_file=host.key_file,
        connect_timeout=host.connect_timeout.total_seconds(),
        command_timeout=host.command_timeout.total_seconds(),
        keepalive=int(host.keepalive.total_seconds()),
        max_sessions=host.max_sessions,
    )


class Transports:
    """One transport per configured host, created on first use and shared after.

    Sharing is what gives one reused SSH connection and one concurrency limit per host.
    """

    def __init__(self, hosts: dict[str, HostConfig]) -> None:
        self._hosts = hosts
        self._open: dict[str, Transport] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> Transport:
        """Return the transport for host `name`.

        Raises KeyError naming the host when the config does not list it.
        """
        with self._lock:
            if name not in self._open:
                if name not in self._hosts:
                    raise KeyError(
                        f"host {name!r} is not in the config's [hosts] table "
                        f"(known: {', '.join(sorted(self._hosts)) or 'none'})"
                    )
                self._open[name] = create_transport(name, self._hosts[name])
            return self._open[name]

    def close(self) -> None:
        """Close every open connection."""
        with self._lock:
            for transport in self._open.values():
                transport.close()
            self._open.clear()
