"""The interface every backup store offers: streamed uploads, reads, links and deletion."""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime, timedelta
from typing import Protocol

from daemon.domain.errors import LapseError


class BackupStoreError(LapseError):
    """A store operation failed; names the store, the object and the cause."""


class Readable(Protocol):
    """A byte stream read in chunks (a file, an S3 response body)."""

    def read(self, size: int = ..., /) -> bytes: ...

    def close(self) -> None: ...


class Upload(ABC):
    """An object being written: data goes in with `write`, then `complete` or `abort`."""

    @abstractmethod
    def write(self, data: bytes) -> None:
        """Add `data` to the object. Raises BackupStoreError when the store refuses it."""

    @abstractmethod
    def complete(self) -> None:
        """Make the object visible under its key. Raises BackupStoreError on failure."""

    @abstractmethod
    def abort(self) -> None:
        """Throw away what was written, leaving nothing behind (best effort, never raises)."""


class BackupStore(ABC):
    """Where backup objects live. Keys are relative ('ACCOUNT/BACKUP/NAME')."""

    kind: str

    @abstractmethod
    def describe(self, key: str) -> str:
        """Return where the object with `key` lives, for people (s3://..., a path)."""

    @abstractmethod
    def begin_upload(
        self,
        key: str,
        *,
        part_size: int,
        retain_until: datetime | None = None,
        read_ahead: int = 0,
    ) -> Upload:
        """Start writing the object `key` in parts of `part_size` bytes.

        `retain_until` asks the store to lock the object until then where it can
        (S3 Object Lock). `read_ahead` is how much of the data its source buffers on
        its own (Transport.read_ahead) while the writer waits on the store. Raises
        BackupStoreError when the upload cannot start.
        """

    def put(self, key: str, data: bytes, retain_until: datetime | None = None) -> None:
        """Write a small object whole. Raises BackupStoreError."""
        upload = self.begin_upload(key, part_size=max(len(data), 1), retain_until=retain_until)
        try:
            upload.write(data)
            upload.complete()
        except BaseException:
            upload.abort()
            raise

    @abstractmethod
    def open(self, key: str, version: str | None = None) -> Readable:
        """Open the object `key` (its `version` where the store keeps versions, else the
        current one) for reading. Raises BackupStoreError when it is missing."""

    def pin(self, key: str) -> str | None:
        """Return the id of the current version of `key`, so that exactly that version is
        read and protected; None where the store keeps no versions. Raises BackupStoreError
        when the object is missing or the store cannot be asked."""
        return None

    @abstractmethod
    def protect(self, key: str, version: str | None, until: datetime) -> bool:
        """Protect the object `key` (its `version`) against deletion and overwrite until
        `until`, never shortening a protection it has; return whether the store could
        (False: a bucket without Object Lock). Raises BackupStoreError when the store refuses.
        """

    def read(self, key: str) -> bytes:
        """Return the whole object `key` (for small objects). Raises BackupStoreError."""
        stream = self.open(key)
        try:
            chunks = []
            while chunk := stream.read(1 << 20):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            stream.close()

    @abstractmethod
    def delete(self, key: str) -> None:
        """Delete the object `key` (missing is fine). Raises BackupStoreError when refused."""

    @abstractmethod
    def delete_prefix(self, prefix: str) -> int:
        """Delete every object whose key starts with `prefix`; return how many.

        Raises BackupStoreError when the store refuses (e.g. objects under Object Lock).
        """

    @abstractmethod
    def download_url(self, key: str, expires: timedelta) -> str | None:
        """Return a link a client can download `key` with until `expires` from now, or
        None when the store cannot give one."""

    @abstractmethod
    def abort_incomplete(self, prefix: str) -> int:
        """Remove unfinished uploads under `prefix` (left by a crash); return how many."""
