"""A backup store built on its first use, so a command can start its other work first.

`lapse restore` starts the host's SSH connection before it needs the store: building
an S3 store loads botocore and its service model (about a quarter of a second of CPU),
which then runs while the OpenSSH client connects instead of before it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from daemon.backup.stores.base import BackupStore, Readable, Upload


class DeferredStore(BackupStore):
    """Stands for the store `build` returns, calling `build` once, at the first use.

    `kind` is the store's kind as the config names it ('s3', 'local'). Every method
    raises what `build` raises (SecretError, say) and then what the store's own raises.
    """

    def __init__(self, kind: str, build: Callable[[], BackupStore]) -> None:
        self.kind = kind
        self._build = build
        self._store: BackupStore | None = None
        self._lock = threading.Lock()

    @property
    def built(self) -> BackupStore:
        """The store itself, built now if it was not yet."""
        with self._lock:
            if self._store is None:
                self._store = self._build()
            return self._store

    def describe(self, key: str) -> str:
        return self.built.describe(key)

    def begin_upload(
        self,
        key: str,
        *,
        part_size: int,
        retain_until: datetime | None = None,
        read_ahead: int = 0,
    ) -> Upload:
        return self.built.begin_upload(
            key, part_size=part_size, retain_until=retain_until, read_ahead=read_ahead
        )

    def put(self, key: str, data: bytes, retain_until: datetime | None = None) -> None:
        self.built.put(key, data, retain_until)

    def open(self, key: str, version: str | None = None) -> Readable:
        return self.built.open(key, version)

    def pin(self, key: str) -> str | None:
        return self.built.pin(key)

    def protect(self, key: str, version: str | None, until: datetime) -> bool:
        return self.built.protect(key, version, until)

    def read(self, key: str) -> bytes:
        return self.built.read(key)

    def delete(self, key: str) -> None:
        self.built.delete(key)

    def delete_prefix(self, prefix: str) -> int:
        return self.built.delete_prefix(prefix)

    def download_url(self, key: str, expires: timedelta) -> str | None:
        return self.built.download_url(key, expires)

    def abort_incomplete(self, prefix: str) -> int:
        return self.built.abort_incomplete(prefix)
