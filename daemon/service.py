"""The long-running daemon: start, serve until a signal, stop cleanly."""

from __future__ import annotations

import signal
import threading
from types import FrameType

import structlog

from daemon.app import App
from daemon.scheduler import LapseScheduler

log = structlog.get_logger("lapse.service")


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
    scheduler = LapseScheduler(app.engine, app.lifecycle, app.config.daemon.sync_interval)
    scheduler.start()
    log.info(
        "lapse running",
        state=app.engine.url.render_as_string(hide_password=True),
        sync_interval=str(app.config.daemon.sync_interval),
    )
    try:
        while not stop.wait(timeout=1.0):
            pass
    finally:
        log.info("lapse stopping")
        scheduler.shutdown()
        app.engine.dispose()
    return 0


def _install_signal_handlers(stop: threading.Event) -> None:
    def _request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal received", signal=signal.Signals(signum).name)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _request_stop)
        signal.signal(signal.SIGINT, _request_stop)
