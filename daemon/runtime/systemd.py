"""Talking to systemd: readiness, watchdog pings, status lines (sd_notify protocol).

The protocol is one datagram per message to the Unix socket named by
$NOTIFY_SOCKET ('@' at its start means the abstract namespace). Outside systemd
the variable is unset and every call is a no-op.
"""

from __future__ import annotations

import os
import socket
import time

import structlog

log = structlog.get_logger("lapse.systemd")


def notify(message: str) -> bool:
    """Send `message` (e.g. "READY=1") to systemd; return whether it was sent."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(message.encode("utf-8"))
    except OSError as error:
        log.warning("systemd notification failed", message=message, error=str(error))
        return False
    return True


class Watchdog:
    """Pings systemd's watchdog at half its interval ($WATCHDOG_USEC) when asked to tick.

    The main loop ticks it; if the loop hangs, the pings stop and systemd restarts
    the service.
    """

    def __init__(self, enabled: bool = True) -> None:
        usec = os.environ.get("WATCHDOG_USEC", "")
        pid = os.environ.get("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())
        self.interval = int(usec) / 2e6 if enabled and usec.isdigit() and mine else None
        self._last = 0.0

    def tick(self) -> None:
        """Ping if half the watchdog interval has passed since the last ping."""
        if self.interval is None:
            return
        now = time.monotonic()
        if now - self._last >= self.interval:
            notify("WATCHDOG=1")
            self._last = now
