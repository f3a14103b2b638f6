"""Building Lapse's parts from a validated config: one place that wires them together."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from functools import partial

from jinja2 import Environment
from sqlalchemy import Engine
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session, sessionmaker

from daemon.backup.service import BackupService
from daemon.backup.stores import create_store
from daemon.billing.base import BillingSource
from daemon.billing.dispatch import create_source
from daemon.billing.samples import ensure_demo_sites, ensure_sample_billing
from daemon.config.schema import BrandConfig, Config, FileBilling
from daemon.domain.clock import Clock, system_clock
from daemon.lifecycle.engine import LifecycleEngine
from daemon.notices.alerts import OpsAlerts
from daemon.notices.compose import compose
from daemon.notices.delivery.dispatch import create_delivery
from daemon.notices.desk import NoticeDesk
from daemon.notices.request import NoticeRequest
from daemon.notices.templates import create_environment
from daemon.playbooks.runner import PlaybookRunner
from daemon.store.db import open_engine, session_factory, state_url
from daemon.store.migrate import migrate
from daemon.transport import Transports


@dataclass
class App:
    """The wired parts of one Lapse process."""

    config: Config
    engine: Engine
    sessions: sessionmaker[Session]
    billing: BillingSource
    notices: NoticeDesk
    lifecycle: LifecycleEngine
    clock: Clock
    transports: Transports
    backups: BackupService
    runner: PlaybookRunner


def state_url_of(config: Config) -> URL:
    """The state database's URL, with the password the config keeps apart. Raises SecretError."""
    password = config.state.password.reveal() if config.state.password else None
    return state_url(config.state.url, password)


def open_state(config: Config) -> tuple[Engine, sessionmaker[Session]]:
    """Open the state database named by the config (no migration)."""
    engine = open_engine(state_url_of(config))
    return engine, session_factory(engine)


def build_app(config: Config, clock: Clock = system_clock, *, migrate_db: bool = True) -> App:
    """Wire the state DB, billing source, notices and lifecycle engine for `config`.

    Migrates the database first unless told not to. Raises StateStoreError,
    SecretError or BillingError when a part cannot be set up.
    """
    engine, sessions = open_state(config)
    if migrate_db:
        migrate(engine)
    billing = create_source(config.billing)
    environment = create_environment(config.notices.templates_dir)
    composer = partial(_compose, brand=config.notices.brand, environment=environment)
    delivery = create_delivery(config.notices.notifier)
    alerts = OpsAlerts(config.alerts, delivery, config.notices.brand.sender)
    notices = NoticeDesk(sessions, composer, delivery, clock, alerts)
    lifecycle = LifecycleEngine(sessions, config, billing, notices, clock)
    transports = Transports(dict(config.hosts))
    backups = BackupService(
        sessions, config, create_store(config.backup.store), transports, clock, alerts
    )
    notices.download_link = backups.client_download_link
    runner = PlaybookRunner(
        lifecycle,
        billing,
        backups,
        transports,
        alerts,
        hosts=config.hosts,
        brand=config.notices.brand,
        policy_for=config.policy_for,
        playbooks_dir=config.playbooks_dir,
        pages_dir=config.maintenance_pages_dir,
    )
    return App(
        config, engine, sessions, billing, notices, lifecycle, clock, transports, backups, runner
    )


def _compose(
    request: NoticeRequest, *, brand: BrandConfig, environment: Environment
) -> EmailMessage:
    return compose(request, brand, environment)


def prepare_embedded_data(config: Config, now: datetime) -> bool:
    """Write the bundled sample billing data for the embedded defaults if it is missing.

    Returns whether the file was written.
    """
    if isinstance(config.billing, FileBilling):
        ensure_demo_sites(config.billing.path.parent / "sites")
        return bool(ensure_sample_billing(config.billing.path, now))
    return False
