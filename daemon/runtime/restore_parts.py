"""What `lapse restore` needs, and only that: the state database, the backup service
over a store built on its first use, and the hosts' transports.

The whole application (daemon.runtime.app) also loads the notices and their
templates, the billing source, the lifecycle engine and the playbook runner: about
half a second of start-up that a restore of site files and databases does not use.
A restore that needs them (--reactivate, or a control panel's own archive restored
through the playbook) gets them from `RestoreParts.full_app`, built when first asked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from daemon.backup.service import BackupService
from daemon.backup.stores import BackupStore, deferred_store
from daemon.config.schema import Config
from daemon.domain.clock import Clock, system_clock
from daemon.lifecycle.queries import AccountQueries
from daemon.runtime.state import open_state
from daemon.store.migrate import migrate
from daemon.transport import Transports

if TYPE_CHECKING:
    from daemon.runtime.app import App


@dataclass
class RestoreParts:
    """The parts of one `lapse restore`: its config, the state database it opened (its
    engine), the backup service over that database, and its accounts."""

    config: Config
    engine: Engine
    backups: BackupService
    accounts: AccountQueries
    clock: Clock = system_clock
    _app: App | None = field(default=None, repr=False)

    def full_app(self) -> App:
        """Return the whole application over the same config and state database, built
        on the first call. Raises what daemon.runtime.app.build_app raises."""
        if self._app is None:
            from daemon.runtime.app import build_app  # the notices, billing, lifecycle...

            self._app = build_app(self.config, self.clock, migrate_db=False, create_db=False)
        return self._app

    def close(self) -> None:
        """Close every connection these parts opened: to the hosts and the state database."""
        self.backups.transports.close()
        self.engine.dispose()
        if self._app is not None:
            self._app.transports.close()
            self._app.engine.dispose()


def open_restore_parts(
    config: Config,
    clock: Clock = system_clock,
    *,
    store: BackupStore | None = None,
    transports: Transports | None = None,
) -> RestoreParts:
    """Open and migrate the existing state database `config` names and set up the backup
    service over its store (built on first use) and hosts (connected on first use), or
    over `store` and `transports` when given (a head start's: daemon.runtime.restore_ahead).

    Raises MissingStateError, StateStoreError, and SecretError for an unreadable secret
    of the state database or the store.
    """
    engine, sessions = open_state(config.state, create=False)
    migrate(engine)
    transports = transports or Transports(dict(config.hosts))
    store = store or deferred_store(config.backup.store)
    backups = BackupService(sessions, config.backup, config.hosts, store, transports, clock)
    return RestoreParts(config, engine, backups, AccountQueries(sessions), clock)
