"""The long-running daemon: start, serve until a signal, stop cleanly."""

from __future__ import annotations

import signal
import threading
import time
from types import FrameType

import structlog

from daemon.app import App
from daemon.backup.retention import expire_backups
from daemon.backup.stores.base import StoreError
from daemon.scheduler import LapseScheduler
from daemon.store.db import StoreError as StoreDBError

log = structlog.get_logger("lapse.service")

# Backup retention is measured in days; checking hourly is plenty and costs one query.
HOUSEKEEPING_INTERVAL = 3600.0


def serve(app: App, stop: threading.Event | None = None) -> int:
    """Run the scheduler until SIGTERM/SIGINT (or `stop` is set).

    Notices left pending by an earlier crash are delivered first. Returns the
    process exit status (0 on a clean stop).
    """
    stop = stop or threading.Event()
    _install_signal_handlers(stop)
    delivered = app.notices.deliver_pending()
    if delivered:
        log.info("delivered notices left pending by the last run", count=delivered)
    interrupted = app.backups.recover_interrupted()
    if interrupted:
        log.warning("backups interrupted by the last stop were marked failed", count=interrupted)
    scheduler = LapseScheduler(
        app.engine, app.lifecycle, app.config.daemon.sync_interval, app.runner
    )
    scheduler.start()
    log.info(
        "lapse running",
        state=app.engine.url.render_as_string(hide_password=True),
        sync_interval=str(app.config.daemon.sync_interval),
    )
    next_housekeeping = time.monotonic()
    try:
        while not stop.wait(timeout=1.0):
            if time.monotonic() >= next_housekeeping:
                _expire_backups(app)
                next_housekeeping = time.monotonic() + HOUSEKEEPING_INTERVAL
    finally:
        log.info("lapse stopping")
        scheduler.shutdown()
        app.engine.dispose()
    return 0


def _expire_backups(app: App) -> None:
    """Expire backups past their retention; a store failure is logged and retried later."""
    try:
        expired = expire_backups(app.backups, app.clock())
    except (StoreError, StoreDBError) as error:
        log.error("backup retention could not run; will retry", error=str(error))
        return
    if expired:
        log.info("expired backups past their retention", count=len(expired))


def _install_signal_handlers(stop: threading.Event) -> None:
    def _request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal received", signal=signal.Signals(signum).name)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _request_stop)
        signal.signal(signal.SIGINT, _request_stop)
