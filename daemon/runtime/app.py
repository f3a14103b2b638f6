"""Building Lapse's parts from a validated config: one place that wires them together."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import partial

from jinja2 import Environment
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from daemon.backup.service import BackupService
from daemon.backup.stores import create_store
from daemon.billing.base import BillingSource
from daemon.billing.dispatch import create_source
from daemon.billing.samples import ensure_demo_sites, ensure_sample_billing
from daemon.config.schema import (
    BillingConfig,
    BrandConfig,
    Config,
    FileBilling,
    NoticesConfig,
    StateConfig,
)
from daemon.domain.clock import Clock, system_clock
from daemon.lifecycle.approvals import Approvals
from daemon.lifecycle.brake import SafetyBrake
from daemon.lifecycle.engine import LifecycleEngine
from daemon.lifecycle.history import AccountHistory
from daemon.lifecycle.preview import NoticePreview
from daemon.lifecycle.queries import AccountQueries
from daemon.notices.alerts import OpsAlerts
from daemon.notices.compose import ComposedNotice, compose
from daemon.notices.delivery.dispatch import create_delivery
from daemon.notices.desk import Composer, NoticeDesk
from daemon.notices.letters import Letters
from daemon.notices.request import NoticeRequest
from daemon.notices.templates import create_environment
from daemon.playbooks.runner import PlaybookRunner
from daemon.reports.figures import Reports
from daemon.runtime.state import open_state
from daemon.store.audit_log import AuditLog
from daemon.store.migrate import migrate
from daemon.store.work_queue import WorkQueue
from daemon.transport import Transports


@dataclass
class Readers:
    """The read models of one state database: what the command line's views ask."""

    accounts: AccountQueries
    history: AccountHistory
    audit: AuditLog
    letters: Letters
    reports: Reports
    queue: WorkQueue


@dataclass
class App:
    """The wired parts of one Lapse process, and the config they were built from: the
    daemon's loop reads its `[daemon]` section and `backup.store`, and refuses a reload
    that moves `[state]`."""

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
    readers: Readers
    approvals: Approvals


def build_app(
    config: Config,
    clock: Clock = system_clock,
    *,
    migrate_db: bool = True,
    create_db: bool = True,
) -> App:
    """Wire the state DB, billing source, notices and lifecycle engine for `config`,
    giving each part only the sections of the config it uses.

    Migrates the database first unless told not to; with `create_db` false, refuses a
    database that does not exist yet. Raises MissingStateError, StateStoreError,
    SecretError or BillingError when a part cannot be set up.
    """
    engine, sessions = open_state(config.state, create=create_db)
    if migrate_db:
        migrate(engine)
    billing = create_source(config.billing)
    delivery = create_delivery(config.notices.notifier)
    alerts = OpsAlerts(config.alerts, delivery, config.notices.brand.sender)
    notices = NoticeDesk(sessions, notice_composer(config.notices), delivery, clock, alerts)
    brake = SafetyBrake(sessions, config.daemon, clock, alerts)
    lifecycle = LifecycleEngine(sessions, config.policy, billing, notices, brake, clock)
    transports = Transports(dict(config.hosts))
    store = create_store(config.backup.store)
    backups = BackupService(sessions, config.backup, config.hosts, store, transports, clock, alerts)
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
        notice_templates_dir=config.notices.templates_dir,
    )
    return App(
        config,
        engine,
        sessions,
        billing,
        notices,
        lifecycle,
        clock,
        transports,
        backups,
        runner,
        readers_of(sessions),
        Approvals(lifecycle, clock, config.policy_for, alerts),
    )


def readers_of(sessions: sessionmaker[Session]) -> Readers:
    """Return the read models over the state database `sessions` open."""
    return Readers(
        AccountQueries(sessions),
        AccountHistory(sessions),
        AuditLog(sessions),
        Letters(sessions),
        Reports(sessions),
        WorkQueue(sessions),
    )


def open_readers(state: StateConfig, *, create: bool = True) -> Readers:
    """Open and migrate the state database the `[state]` section names, for reading only:
    no billing source, notifier, store or host is set up (nor needs its secrets).

    With `create` false a database that does not exist yet is refused. Raises
    MissingStateError, StateStoreError or SecretError when it cannot be opened.
    """
    engine, sessions = open_state(state, create=create)
    migrate(engine)
    return readers_of(sessions)


def open_preview(
    config: Config, clock: Clock = system_clock, *, create: bool = True
) -> NoticePreview:
    """Set up `lapse notices preview`: the accounts' read model over the migrated state
    database, the billing source (made only for an account it holds no snapshot of),
    the `[policy]` tables and the notice desk's composer. Raises what open_readers raises.
    """
    readers = open_readers(config.state, create=create)
    return NoticePreview(
        readers.accounts,
        partial(create_source, config.billing),
        config.policy,
        notice_composer(config.notices),
        clock,
    )


def notice_composer(notices: NoticesConfig) -> Composer:
    """Return the composer of client notices the `[notices]` section describes: its brand,
    and its templates consulted before the shipped ones."""
    environment = create_environment(notices.templates_dir)
    return partial(_compose, brand=notices.brand, environment=environment)


def _compose(
    request: NoticeRequest, *, brand: BrandConfig, environment: Environment
) -> ComposedNotice:
    return compose(request, brand, environment)


def prepare_embedded_data(billing: BillingConfig, now: datetime) -> bool:
    """Write the bundled sample billing data the embedded defaults' billing section names,
    if it is missing.

    Returns whether the file was written.
    """
    if isinstance(billing, FileBilling):
        ensure_demo_sites(billing.path.parent / "sites")
        return bool(ensure_sample_billing(billing.path, now))
    return False
