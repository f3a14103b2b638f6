"""One pass over a stored object: read ahead, checked by the daemon, sent to the host.

Three stages run at once: a thread reads the stream (a restore hands it the object
as it comes from the store, decompressed; the reader it wraps counts and hashes
the stored bytes), the caller's checker reads it through a `Gate`, and a thread
writes it to the host's command. The gate hands a chunk to the sender only once
the checker has read all of it and asked for more, so the host never receives a
byte the checker has not seen: a member the restore rules refuse stops the
stream before its header reaches the host's tar.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from types import TracebackType

from daemon.backup.stores.base import Readable
from daemon.domain.errors import LapseError
from daemon.transport import RemoteProcess

CHUNK = 1 << 20
# Chunks each queue holds: bounds the memory of a restore whatever the object's size.
_QUEUED = 8
_POLL = 0.2
_END = b""


class GateClosedError(LapseError):
    """The gate was closed (a stage failed, or the caller gave up): carries the cause."""


class Gate:
    """Reads `stream` ahead and passes what the checker has read on to `process`.

    Use as a context manager; read with `read`, then `finish` to send the rest.
    `sent` is told the size of each chunk handed on to the sender (in the reading
    thread, so an exception it raises stops the stream like an interrupt).
    """

    def __init__(
        self, stream: Readable, process: RemoteProcess, sent: Callable[[int], None]
    ) -> None:
        self._stream = stream
        self._process = process
        self._sent = sent
        self._fetched: queue.Queue[bytes] = queue.Queue(_QUEUED)
        self._outgoing: queue.Queue[bytes] = queue.Queue(_QUEUED)
        self._stop = threading.Event()
        self._errors: list[BaseException] = []
        self._chunk = b""
        self._offset = 0
        self._ended = False
        self._threads = [
            threading.Thread(target=self._fetch, daemon=True, name="restore-fetch"),
            threading.Thread(target=self._send, daemon=True, name="restore-send"),
        ]

    def __enter__(self) -> Gate:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._stop.set()
        if kind is not None:
            # The sender may be blocked in a write to a host that stopped reading.
            self._process.kill()
        for thread in self._threads:
            thread.join(timeout=5)

    def read(self, size: int = -1) -> bytes | memoryview:
        """Return up to `size` bytes (a whole chunk when negative), b"" at the end. Part
        of a chunk is a memoryview of it, not a copy: the walk asks for 64 KiB at a time,
        and slicing bytes copied every byte of a restore once more (0.1 s of CPU a GiB).

        Raises GateClosedError when reading or sending failed.
        """
        if self._offset >= len(self._chunk):
            if self._ended:
                return b""
            if self._chunk:
                self._put(self._outgoing, self._chunk)  # read to its end: the host may have it
                self._sent(len(self._chunk))
            self._chunk, self._offset = self._take(), 0
            if not self._chunk:
                self._ended = True
                return b""
        if self._offset == 0 and (size < 0 or size >= len(self._chunk)):
            self._offset = len(self._chunk)
            return self._chunk
        end = len(self._chunk) if size < 0 else self._offset + size
        piece = memoryview(self._chunk)[self._offset : end]
        self._offset += len(piece)
        return piece

    def finish(self) -> None:
        """Pass everything not yet read on to the host, close its input and wait until
        the sender wrote it all. Raises GateClosedError when a stage failed."""
        while self.read(CHUNK):
            pass
        self._put(self._outgoing, _END)
        self._threads[1].join()
        self._raise_failure()

    def _take(self) -> bytes:
        while True:
            self._raise_failure()
            try:
                return self._fetched.get(timeout=_POLL)
            except queue.Empty:
                continue

    def _put(self, where: queue.Queue[bytes], chunk: bytes) -> None:
        while True:
            self._raise_failure()
            try:
                where.put(chunk, timeout=_POLL)
                return
            except queue.Full:
                continue

    def _raise_failure(self) -> None:
        if self._errors:
            raise GateClosedError(str(self._errors[0])) from self._errors[0]

    def _fetch(self) -> None:
        try:
            while not self._stop.is_set():
                chunk = self._stream.read(CHUNK)
                while not self._stop.is_set():
                    try:
                        self._fetched.put(chunk, timeout=_POLL)
                        break
                    except queue.Full:
                        continue
                if not chunk:
                    return
        except BaseException as error:  # noqa: BLE001 - handed to the reading thread
            self._errors.append(error)

    def _send(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    chunk = self._outgoing.get(timeout=_POLL)
                except queue.Empty:
                    continue
                if chunk is _END or not chunk:
                    self._process.close_stdin()
                    return
                self._process.write(chunk)
        except BaseException as error:  # noqa: BLE001 - handed to the reading thread
            self._errors.append(error)
