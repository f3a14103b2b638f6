"""Delivery into a directory of .eml files, one per Message-ID."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
    delivery never leaves a second copy. Inside `together()` the files are
    written, then made durable at its end with one flush of the directory.
    """

    name = "outbox"
    # A file rewritten after a crash replaces nothing: the name is the Message-ID's.
    batch_size = 500

    def __init__(self, path: Path) -> None:
        self.path = path
        # Per thread: the files written inside a together() block, not yet durable.
        self._local = threading.local()

    def deliver(self, message: EmailMessage) -> str:
        """Write `message` unless its file exists; return the file's path.

        Raises PermanentDeliveryError when the message has no Message-ID and
        TemporaryDeliveryError when the directory cannot be written (full
        disk, permissions): the operator can fix that and the retry succeeds.
        """
        return self._write(file_name(message), message.as_bytes)

    def deliver_stored(self, raw: bytes, message_id: str) -> str:
        """Write the stored notice's bytes as they are, named by `message_id`, unless its
        file exists; return the file's path. Raises what `deliver` raises."""
        return self._write(file_name_for(message_id), lambda: raw)

    def _write(self, name: str, data: Callable[[], bytes]) -> str:
        """Write the bytes `data` gives to file `name` unless it exists (alone: durable at
        once; inside `together()`: staged); return the file's path. Raises
        TemporaryDeliveryError when the directory cannot be written."""
        target = self.path / name
        if target.exists():
            return str(target)
        staged: list[_Staged] | None = getattr(self._local, "staged", None)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            written = _Staged(_write_temporary(target, data()), target)
            if staged is not None:
                staged.append(written)
            else:  # alone: durable and in place now, as a batch of one
                try:
                    _publish([written], self.path)
                except BaseException:
                    _discard([written])
                    raise
        except OSError as error:
            raise TemporaryDeliveryError(f"cannot write {target}: {error}") from error
        return str(target)

    @contextmanager
    def together(self) -> Iterator[None]:
        """Write the messages delivered in this thread inside the block to temporary
        files, then at its end flush each, rename each into place and flush the directory
        once. Raises TemporaryDeliveryError when that fails; the temporary files of a block
        that failed are removed."""
        staged: list[_Staged] = []
        self._local.staged = staged
        try:
            yield
        except BaseException:
            _discard(staged)
            raise
        finally:
            self._local.staged = None
        try:
            _publish(staged, self.path)
        except OSError as error:
            _discard(staged)
            raise TemporaryDeliveryError(f"cannot write to {self.path}: {error}") from error


class _Staged:
    """A message written to a temporary file beside its target, not yet durable."""

    __slots__ = ("target", "temporary")

    def __init__(self, temporary: Path, target: Path) -> None:
        self.temporary = temporary
        self.target = target


def file_name(message: EmailMessage) -> str:
    """Return the .eml file name for `message`, made from its Message-ID.

    Characters unsafe in file names become '_'; when anything was replaced
    or cut, a hash of the full Message-ID keeps different ids apart.
    Raises PermanentDeliveryError when the message has no Message-ID.
    """
    return file_name_for(str(message.get("Message-ID", "")))


def file_name_for(message_id: str) -> str:
    """Return the .eml file name for a message whose Message-ID is `message_id`, as
    `file_name` does. Raises PermanentDeliveryError when it is empty."""
    message_id = message_id.strip()
    if not message_id:
        raise PermanentDeliveryError("message has no Message-ID; the outbox names files by it")
    bare = message_id.strip("<>")
    stem = _UNSAFE.sub("_", bare)[:_MAX_STEM].lstrip(".")
    if stem != bare:
        stem += "-" + hashlib.sha256(message_id.encode()).hexdigest()[:12]
    return stem + ".eml"


def _write_temporary(target: Path, data: bytes) -> Path:
    """Write `data` to a new temporary file beside `target`, not flushed; return its path.

    Raises OSError; the temporary file is removed when writing fails.
    """
    fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return Path(temp_name)


def _publish(staged: list[_Staged], directory: Path) -> None:
    """Make the staged files durable and put them in place: flush each (the first flush
    writes most of the others' data too), rename each to its target, then flush the
    directory once so every rename survives a crash. Raises OSError."""
    if not staged:
        return
    for item in staged:
        fd = os.open(item.temporary, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    for item in staged:
        os.replace(item.temporary, item.target)
    _fsync_directory(directory)


def _discard(staged: list[_Staged]) -> None:
    """Remove what is left of the staged temporary files."""
    for item in staged:
        item.temporary.unlink(missing_ok=True)


def _fsync_directory(directory: Path) -> None:
    """Flush the directory entry so the rename survives a crash."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
