"""A backup store in a local directory (the embedded default).

Objects are written as `KEY.partial` and renamed into place when complete, so a
crash never leaves something that looks like a finished object. Files are 0600
and directories 0700: backups hold client data.

A protected backup (one a deletion relied on) is made read-only: files 0400 and
its directory 0500. Lapse never writes over a read-only object, and expiry gives
the directories their write bit back before removing them. The modes guard against
mistakes and other unprivileged users, not against root: only a store that locks
objects itself (S3 Object Lock) stands against a compromised machine.
"""

from __future__ import annotations

import os
import shutil
import stat
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from daemon.backup.stores.base import BackupStore, BackupStoreError, Upload

_PARTIAL = ".partial"


class LocalUpload(Upload):
    """An object being written to a `.partial` file next to its final path."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._partial = path.with_name(path.name + _PARTIAL)
        if _is_protected(path):
            raise BackupStoreError(f"{path} is protected (read-only): it is never written over")
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            descriptor = os.open(self._partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        except OSError as error:
            raise BackupStoreError(f"cannot write {self._partial}: {error}") from error
        self._file: BinaryIO = os.fdopen(descriptor, "wb")

    def write(self, data: bytes) -> None:
        try:
            self._file.write(data)
        except OSError as error:
            raise BackupStoreError(f"cannot write {self._partial}: {error}") from error

    def complete(self) -> None:
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._partial.replace(self._path)
        except OSError as error:
            raise BackupStoreError(f"cannot finish {self._path}: {error}") from error

    def abort(self) -> None:
        self._file.close()
        self._partial.unlink(missing_ok=True)


def _is_protected(path: Path) -> bool:
    """Whether `path` is an object made read-only by `LocalStore.protect`."""
    try:
        return not path.lstat().st_mode & stat.S_IWUSR
    except FileNotFoundError:
        return False


def _make_writable(base: Path) -> None:
    """Give `base` and the directories below it their owner's write bit back (expiry of
    a protected backup: a directory must be writable for its files to be removed)."""
    for directory in [base, *(path for path in base.rglob("*") if path.is_dir())]:
        if not directory.is_symlink():
            directory.chmod(stat.S_IMODE(directory.lstat().st_mode) | stat.S_IWUSR)


class LocalStore(BackupStore):
    """Backups under one directory, one sub-directory per account and backup."""

    kind = "local"

    def __init__(self, root: Path) -> None:
        self._root = root

    def _path(self, key: str) -> Path:
        relative = PurePosixPath(key)
        if relative.is_absolute() or ".." in relative.parts or not relative.parts:
            raise BackupStoreError(f"object key {key!r} would leave the store directory")
        return self._root.joinpath(*relative.parts)

    def describe(self, key: str) -> str:
        return str(self._path(key))

    def begin_upload(
        self,
        key: str,
        *,
        part_size: int,
        retain_until: datetime | None = None,
        read_ahead: int = 0,
    ) -> Upload:
        # A directory cannot lock files against its owner; retention is Lapse's own.
        return LocalUpload(self._path(key))

    def open(self, key: str, version: str | None = None) -> BinaryIO:
        path = self._path(key)
        try:
            return path.open("rb")
        except OSError as error:
            raise BackupStoreError(f"cannot read backup object {path}: {error.strerror}") from error

    def pin(self, key: str) -> str | None:
        """Return None (a directory keeps no versions) once the object is found.

        Raises BackupStoreError when it is missing, as every store does.
        """
        path = self._path(key)
        if not path.is_file():
            raise BackupStoreError(f"cannot find backup object {path}")
        return None

    def protect(self, key: str, version: str | None, until: datetime) -> bool:
        path = self._path(key)
        try:
            path.chmod(0o400)
            path.parent.chmod(0o500)
        except OSError as error:
            raise BackupStoreError(f"cannot make {path} read-only: {error.strerror}") from error
        return True

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            if path.parent.is_dir():
                _make_writable(path.parent)
            path.unlink(missing_ok=True)
            # Drop the backup's and account's directories once they are empty.
            for parent in (path.parent, path.parent.parent):
                if parent != self._root and not any(parent.iterdir()):
                    parent.rmdir()
        except FileNotFoundError:
            pass
        except OSError as error:
            raise BackupStoreError(f"cannot delete {path}: {error.strerror}") from error

    def delete_prefix(self, prefix: str) -> int:
        base = self._path(prefix.rstrip("/"))
        if not base.exists():
            return 0
        files = [path for path in base.rglob("*") if not path.is_dir()]
        try:
            _make_writable(base)
            shutil.rmtree(base)
            account_dir = base.parent
            if account_dir != self._root and not any(account_dir.iterdir()):
                account_dir.rmdir()
        except OSError as error:
            raise BackupStoreError(f"cannot delete {base}: {error}") from error
        return len(files)

    def download_url(self, key: str, expires: timedelta) -> str | None:
        return None  # a path on the Lapse machine is no link for a client

    def abort_incomplete(self, prefix: str) -> int:
        base = self._path(prefix) if prefix else self._root
        if not base.exists():
            return 0
        removed = 0
        for partial in base.rglob("*" + _PARTIAL):
            partial.unlink(missing_ok=True)
            removed += 1
        return removed
