"""The long-running daemon: start, serve until a signal, stop cleanly."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from types import FrameType

import structlog

from daemon.backup.protection import check_store_protection
from daemon.backup.retention import expire_backups
from daemon.backup.stores.base import BackupStoreError
from daemon.billing.base import BillingError
from daemon.config.load import ConfigError
from daemon.config.schema import Config, StoreConfig
from daemon.config.secrets import SecretError
from daemon.runtime import collector
from daemon.runtime.app import App, build_app
from daemon.runtime.console.listener import console_listener
from daemon.runtime.coordinator import Coordinator
from daemon.runtime.http.server import LapseHTTP, Scheduling
from daemon.runtime.http.serving import ListenerThread
from daemon.runtime.leadership import Leadership
from daemon.runtime.systemd import Watchdog, notify
from daemon.store.errors import StateStoreError

log = structlog.get_logger("lapse.service")

# Backup retention is measured in days; checking hourly is plenty and costs one query.
HOUSEKEEPING_INTERVAL = 3600.0
# The main loop's beat: signals, the watchdog and status lines are handled this often.
WATCHDOG_TICK = 0.5


def serve(
    app: App,
    stop: threading.Event | None = None,
    reload_config: Callable[[], Config] | None = None,
    leadership: Leadership | None = None,
) -> int:
    """Run the daemon until SIGTERM/SIGINT (or `stop` is set).

    Notices left pending and backups interrupted by an earlier stop are dealt with
    first; then systemd hears READY=1, watchdog pings from this loop and a STATUS
    line after each sync. Phases run in the pool; the scheduler runs while this
    daemon leads (`leadership`; None: a lone daemon without a lock). SIGHUP re-reads
    the config through `reload_config`: an invalid one is rejected and the running one
    kept. SIGTERM lets the running steps finish (up to `daemon.stop_timeout`), records
    progress, says STOPPING=1 and returns 0. A lone daemon whose lock was lost to
    another stops the same way, returning 1. Raises BackupStoreError, before anything
    starts, when the config requires an Object Lock the bucket lacks.
    """
    _check_store_protection(app.config.backup.store)
    stop = stop or threading.Event()
    reload_requested = threading.Event()
    _install_signal_handlers(stop, reload_requested)
    watchdog = Watchdog(app.config.daemon.watchdog)
    coordinator = Coordinator(app, leadership)
    listener: LapseHTTP | None = None
    console: ListenerThread | None = None
    next_housekeeping = time.monotonic()
    status = ""
    result = 0
    try:
        if not _still_the_writer(coordinator.start):
            return 1
        listener = _listen(app, coordinator)
        console = _console(app, coordinator)
        notify("READY=1")
        while not stop.wait(timeout=WATCHDOG_TICK):
            watchdog.tick()
            if not _still_the_writer(coordinator.tick):
                result = 1
                break
            if reload_requested.is_set():
                reload_requested.clear()
                if listener is not None:
                    listener.stop()
                if console is not None:
                    console.stop()
                app, coordinator = _reload(app, coordinator, reload_config)
                listener = _listen(app, coordinator)
                console = _console(app, coordinator)
                # The replaced app's cycles were frozen with it at start.
                collector.refreeze()
            if time.monotonic() >= next_housekeeping and coordinator.scheduler is not None:
                _expire_backups(app)
                _alert_waiting_approvals(app)
                next_housekeeping = time.monotonic() + HOUSEKEEPING_INTERVAL
            line = _status_line(coordinator)
            if line != status:
                notify(f"STATUS={line}")
                status = line
    finally:
        log.info("lapse stopping")
        notify("STOPPING=1")
        if listener is not None:
            listener.stop()
        if console is not None:
            console.stop()
        app.runner.stop_requested.set()
        coordinator.shutdown()
        app.transports.close()
        app.engine.dispose()
    return result


def _still_the_writer(check: Callable[[], None]) -> bool:
    """Run a step that confirms a lone daemon's lock; False (logged) when it was lost
    and this daemon must stop."""
    try:
        check()
    except StateStoreError as error:
        log.error("one-daemon lock lost; stopping", error=str(error))
        return False
    return True


def _check_store_protection(store: StoreConfig) -> None:
    """Say at start what keeps the store from protecting backups a deletion relied on.

    Raises BackupStoreError when the config requires Object Lock and the bucket lacks it."""
    protection = check_store_protection(store)
    for line in protection.warnings:
        log.warning("backups cannot be protected", problem=line)
    if protection.errors:
        raise BackupStoreError("; ".join(protection.errors))


def _listen(app: App, scheduler: Scheduling) -> LapseHTTP | None:
    """Start the webhook, health and metrics listener if the config asks for one."""
    if app.config.daemon.listen is None:
        return None
    listener = http_listener(app, scheduler, app.config.daemon.listen)
    listener.start()
    return listener


def _console(app: App, coordinator: Coordinator) -> ListenerThread | None:
    """Start the operator console if the config's `[console]` section asks for one."""
    if app.config.console.listen is None:
        return None
    console = console_listener(app, coordinator, app.config.console.listen)
    console.start()
    return console


def http_listener(app: App, scheduler: Scheduling, listen: str) -> LapseHTTP:
    """Build (not start) `app`'s webhook, health and metrics listener on `listen`, with the
    config's `[webhooks]` secrets and sync interval."""
    return LapseHTTP(
        app.lifecycle,
        scheduler,
        listen,
        webhooks=app.config.webhooks,
        sync_interval=app.config.daemon.sync_interval,
    )


def _reload(
    app: App, coordinator: Coordinator, reload_config: Callable[[], Config] | None
) -> tuple[App, Coordinator]:
    """Swap in a freshly read config, or keep the running one if it is invalid. The
    leadership carries over (it is held on the database, which a reload may not move)."""
    if reload_config is None:
        log.warning("SIGHUP ignored: the daemon runs on its embedded defaults")
        return app, coordinator
    notify("RELOADING=1")
    try:
        config = reload_config()
        if config.state.url != app.config.state.url:
            # The one-daemon lock is held on the database this process started with.
            raise ConfigError(["state.url changed: restart the daemon to move to another database"])
        fresh = build_app(config, app.clock)
    except (ConfigError, StateStoreError, SecretError, BillingError) as error:
        log.error("config reload rejected; the running config stays", error=str(error))
        notify("READY=1")
        return app, coordinator
    leadership = coordinator.leadership
    coordinator.leadership = None  # kept for the replacement, not released
    app.runner.stop_requested.set()
    coordinator.shutdown()
    app.transports.close()
    app.engine.dispose()
    log.info("config reloaded")
    replacement = Coordinator(fresh, leadership)
    replacement.start()
    notify("READY=1")
    return fresh, replacement


def _status_line(coordinator: Coordinator) -> str:
    """One line for `systemctl status`: the last sync and whether the brake holds, or
    that this daemon follows; and the phases it runs."""
    running = coordinator.pool.figures().running
    scheduler = coordinator.scheduler
    if scheduler is None:
        return f"following (another daemon leads); {running} phase(s) running here"
    report = scheduler.last_report
    if report is None or scheduler.last_sync is None:
        return "starting: first billing sync"
    line = f"last sync {scheduler.last_sync:%Y-%m-%d %H:%M} UTC: {report.summary()}"
    return f"{line}; {running} phase(s) running"


def _expire_backups(app: App) -> None:
    """Expire backups past their retention; a store failure is logged and retried later."""
    try:
        expired = expire_backups(app.backups, app.clock())
    except (BackupStoreError, StateStoreError) as error:
        log.error("backup retention could not run; will retry", error=str(error))
        return
    if expired:
        log.info("expired backups past their retention", count=len(expired))


def _alert_waiting_approvals(app: App) -> None:
    """Alert ops about phases waiting for approval too long; a database failure is logged
    and retried at the next housekeeping."""
    try:
        app.approvals.alert_overdue()
    except StateStoreError as error:
        log.error("waiting approvals could not be checked; will retry", error=str(error))


def _install_signal_handlers(stop: threading.Event, reload_requested: threading.Event) -> None:
    def _request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal received", signal=signal.Signals(signum).name)
        stop.set()

    def _request_reload(signum: int, _frame: FrameType | None) -> None:
        log.info("signal received", signal=signal.Signals(signum).name)
        reload_requested.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _request_stop)
        signal.signal(signal.SIGINT, _request_stop)
        signal.signal(signal.SIGHUP, _request_reload)
