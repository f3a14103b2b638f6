"""Stopping a streaming command when its phase must stop (a payment arrived).

A backup of a large site streams for minutes or hours, and reading its output
blocks while the host is busy, so the stop check cannot wait for the next chunk:
a thread asks it every few seconds and, on an answer, kills the command. The
reader then sees the stream end and looks at the flag.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import structlog
from sqlalchemy.exc import SQLAlchemyError

from daemon.transport.base import RemoteProcess

log = structlog.get_logger("lapse.backup")

# Seconds between two stop checks during a stream: well inside the 10 s within which a
# payment must stop a running phase, and one small query each.
POLL_SECONDS = 2.0

StopCheck = Callable[[], "str | None"]


@dataclass
class StopFlag:
    """Why the stream was stopped, or None while it was not."""

    reason: str | None = None


@contextmanager
def stop_watch(
    check: StopCheck | None, process: RemoteProcess, interval: float = POLL_SECONDS
) -> Iterator[StopFlag]:
    """Call `check` every `interval` seconds while the block runs; when it returns a
    reason, record it in the yielded flag and kill `process`.

    Without a check the flag stays empty and no thread starts. A check that cannot
    reach the state database is logged and asked again next time: an unknown answer
    is no reason to stop a backup.
    """
    flag = StopFlag()
    if check is None:
        yield flag
        return
    done = threading.Event()

    def watch() -> None:
        while not done.wait(interval):
            try:
                reason = check()
            except SQLAlchemyError as error:
                log.warning("stop check failed; asking again", error=str(error))
                continue
            if reason is not None:
                flag.reason = reason
                log.info("stopping a stream", command=process.label, reason=reason)
                process.kill()
                return

    thread = threading.Thread(target=watch, name="stop-watch", daemon=True)
    thread.start()
    try:
        yield flag
    finally:
        done.set()
        thread.join()
