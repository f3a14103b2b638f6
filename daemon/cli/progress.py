"""A progress display for restores: bytes, speed and time left per object.

Shown only when stderr is a terminal; under journald or in a pipe the restore's
log lines say the same without control characters.
"""

from __future__ import annotations

import sys
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from daemon.backup.restore import RestoreRequest
from daemon.backup.views import BackupView


class RestoreProgress:
    """Context manager whose `advance(name, size)` moves the bar of object `name`.

    Each chosen object gets one bar sized to the object: a site archive is read
    once, checked as it streams into the host (the host's listing and the swap
    that follow are not counted); a database is checked first, then streamed.
    """

    def __init__(self, backup: BackupView, request: RestoreRequest) -> None:
        self._progress: Progress | None = None
        self._tasks: dict[str, TaskID] = {}
        if request.dry_run or not sys.stderr.isatty() or backup.manifest is None:
            return
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        for entry in backup.manifest.objects:
            wanted = (entry.kind == "files" and request.files) or (
                entry.kind == "database" and request.databases
            )
            if wanted:
                self._tasks[entry.name] = self._progress.add_task(entry.name, total=entry.size)

    def __enter__(self) -> RestoreProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def advance(self, name: str, size: int) -> None:
        """Record `size` more bytes of object `name` moved into the host."""
        if self._progress is not None and name in self._tasks:
            self._progress.advance(self._tasks[name], size)
