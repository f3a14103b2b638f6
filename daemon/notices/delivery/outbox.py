"""Delivery into a directory of .eml files, one per Message-ID."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from email.message import EmailMessage
from pathlib import Path

from daemon.notices.delivery.base import (
    Delivery,
    PermanentDeliveryError,
    TemporaryDeliveryError,
)

_UNSAFE = re.compile(r"[^A-Za-z0-9._@+=-]")
_MAX_STEM = 150


class OutboxDelivery(Delivery):
    """Writes each message to `<path>/<sanitized Message-ID>.eml`.

    Writing is atomic (temporary file, fsync, rename) and idempotent: a
    message whose file already exists is not written again, so a retried
    delivery never leaves a second copy.
    """

    name = "outbox"

    def __init__(self, path: Path) -> None:
        self.path = path

    def deliver(self, message: EmailMessage) -> str:
        """Write `message` unless its file exists; return the file's path.

        Raises PermanentDeliveryError when the message has no Message-ID and
        TemporaryDeliveryError when the directory cannot be written (full
        disk, permissions): the operator can fix that and the retry succeeds.
        """
        target = self.path / file_name(message)
        if target.exists():
            return str(target)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            _write_atomically(target, message.as_bytes())
        except OSError as error:
            raise TemporaryDeliveryError(f"cannot write {target}: {error}") from error
        return str(target)


def file_name(message: EmailMessage) -> str:
    """Return the .eml file name for `message`, made from its Message-ID.

    Characters unsafe in file names become '_'; when anything was replaced
    or cut, a hash of the full Message-ID keeps different ids apart.
    Raises PermanentDeliveryError when the message has no Message-ID.
    """
    message_id = str(message.get("Message-ID", "")).strip()
    if not message_id:
        raise PermanentDeliveryError("message has no Message-ID; the outbox names files by it")
    bare = message_id.strip("<>")
    stem = _UNSAFE.sub("_", bare)[:_MAX_STEM].lstrip(".")
    if stem != bare:
        stem += "-" + hashlib.sha256(message_id.encode()).hexdigest()[:12]
    return stem + ".eml"


def _write_atomically(target: Path, data: bytes) -> None:
    """Write `data` to `target` so readers see either no file or the whole file.

    Raises OSError; the temporary file is removed when anything fails.
    """
    fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, target)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    _fsync_directory(target.parent)


def _fsync_directory(directory: Path) -> None:
    """Flush the directory entry so the rename survives a crash."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
