"""The console's own listener, wired to the daemon's parts."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Protocol

from daemon.runtime.app import App
from daemon.runtime.console.app import console_app
from daemon.runtime.console.services import ConsoleServices
from daemon.runtime.http.serving import Limits, ListenerThread

# A page is a few queries; a slow client or a stuck request is cut like a webhook's,
# with room for a busy page and a browser's few parallel connections per person.
CONSOLE_LIMITS = Limits(read_timeout=10.0, connection_timeout=60.0, max_connections=64)


class ConsoleScheduling(Protocol):
    """What the console asks of the daemon's scheduling (the coordinator, or a lone
    scheduler in tests): when billing was last synced, and to evaluate an account and run
    what it has queued soon."""

    @property
    def last_sync(self) -> datetime | None:
        """When billing was last synced here (None before the first, or on a follower)."""

    def wake_soon(self, account_id: str) -> None:
        """An operator acted on the account: evaluate it and run what it queued soon."""


def console_services(app: App, scheduler: ConsoleScheduling) -> ConsoleServices:
    """The console's view of the daemon: `app`'s read models and services, and the
    scheduler's last sync and wake-up."""
    return ConsoleServices(
        app.readers,
        app.lifecycle,
        app.runner,
        app.approvals,
        app.backups,
        lambda: scheduler.last_sync,
        scheduler.wake_soon,
    )


def console_listener(app: App, scheduler: ConsoleScheduling, listen: str) -> ListenerThread:
    """Build (not start) the console on `listen` with the config's `[console]` section.

    Raises SecretError when the session key cannot be read, OSError when the address
    cannot be bound.
    """
    config = app.config.console
    key = config.session_secret.reveal() if config.session_secret else secrets.token_urlsafe(32)
    web = console_app(console_services(app, scheduler), config, key)
    return ListenerThread(web, listen, lambda: CONSOLE_LIMITS, name="console")
