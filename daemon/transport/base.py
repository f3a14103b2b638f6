"""The one interface Lapse uses to run commands on a hosting server.

A transport runs bash scripts (always under `set -o pipefail`, so a failing
`mysqldump | zstd` is a failure) and gives back their output either whole
(`run`) or as a stream (`start`). Two implementations share it: `local`
(subprocess, for Lapse running on the hosting server itself) and `ssh`
(paramiko, for remote hosts).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from daemon.domain.errors import LapseError

# How much of a command's stderr is kept for error messages: the tail is what explains
# a failure, and a chatty command must not grow memory without bound.
STDERR_TAIL_BYTES = 64 * 1024


class TransportError(LapseError):
    """A host could not be reached or a connection broke; names the host and the cause."""


class HostKeyError(TransportError):
    """The host's key is unknown or differs from the known_hosts file: never connect."""


class CommandError(LapseError):
    """A command ran and failed: carries the host, what was run, exit status and stderr."""

    def __init__(self, host: str, label: str, status: int, stderr: str) -> None:
        self.host = host
        self.label = label
        self.status = status
        self.stderr = stderr
        detail = stderr.strip().splitlines()[-5:] if stderr.strip() else ["(no error output)"]
        super().__init__(f"{label} on {host} exited with status {status}: " + " | ".join(detail))


@dataclass(frozen=True)
class CommandResult:
    """What a finished command left: its exit status, output and the tail of its stderr."""

    status: int
    stdout: bytes
    stderr: str


class StderrTail:
    """Keeps the last STDERR_TAIL_BYTES of a stream that a thread drains.

    Draining stderr while stdout is read is what keeps a command that writes
    much to both from blocking (its stderr pipe or SSH window fills up).
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._lock = threading.Lock()

    def add(self, data: bytes) -> None:
        """Append `data`, dropping the oldest bytes beyond the limit."""
        with self._lock:
            self._buffer.extend(data)
            if len(self._buffer) > STDERR_TAIL_BYTES:
                del self._buffer[: len(self._buffer) - STDERR_TAIL_BYTES]

    def text(self) -> str:
        """Return what was kept, decoded leniently."""
        with self._lock:
            return self._buffer.decode("utf-8", errors="replace")


class RemoteProcess(ABC):
    """A running command: its stdin can be written, its stdout read as a byte stream."""

    host: str
    label: str

    @abstractmethod
    def read(self, size: int) -> bytes:
        """Return up to `size` bytes of stdout, b"" at its end.

        Raises TransportError when the connection breaks or stays silent past the
        command timeout.
        """

    @abstractmethod
    def write(self, data: bytes) -> None:
        """Send `data` to the command's stdin. Raises TransportError on a broken link."""

    @abstractmethod
    def close_stdin(self) -> None:
        """Signal end of input to the command."""

    @abstractmethod
    def wait(self) -> CommandResult:
        """Wait for the command to end (stdout must have been read to its end first).

        Returns the result with an empty `stdout`. Raises TransportError if the
        connection breaks; a non-zero status is returned, not raised.
        """

    @abstractmethod
    def kill(self) -> None:
        """Stop the command now (used when the consumer of its output failed)."""

    def check(self) -> CommandResult:
        """Wait for the command and raise CommandError unless it exited 0."""
        result = self.wait()
        if result.status != 0:
            raise CommandError(self.host, self.label, result.status, result.stderr)
        return result

    def read_all(self) -> bytes:
        """Read stdout to its end and return it (for commands with small output)."""
        chunks = []
        while chunk := self.read(1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)

    def run_to_end(self, stdin: bytes = b"") -> CommandResult:
        """Send `stdin`, close it, read stdout to its end and wait; return the result
        (a non-zero status is returned, not raised). Raises TransportError as `wait`."""
        if stdin:
            self.write(stdin)
        self.close_stdin()
        stdout = self.read_all()
        result = self.wait()
        return CommandResult(result.status, stdout, result.stderr)


class Transport(ABC):
    """Runs bash scripts on one host."""

    name: str
    # How much of a command's output the transport takes in on its own while the reader
    # is busy elsewhere: an SSH channel's window; nothing beyond the pipe for a local
    # command. An upload that can lean on it needs no spare part buffer of its own.
    read_ahead: int = 0

    @abstractmethod
    def _spawn(self, script: str, label: str) -> RemoteProcess:
        """Start `script` under `bash -o pipefail -c` and return the running process."""

    @abstractmethod
    def _release(self) -> None:
        """Give back the session slot taken by `_spawn`."""

    @abstractmethod
    def close(self) -> None:
        """Close connections; the transport reconnects on its next use."""

    @contextmanager
    def start(self, script: str, label: str) -> Iterator[RemoteProcess]:
        """Run `script` and yield its process; on leaving, a command still running is killed.

        `label` names the command in errors and logs (scripts may be long). The
        caller reads stdout and then calls `check()` or `wait()`. Raises
        TransportError when the host cannot be reached.
        """
        process = self._spawn(script, label)
        try:
            yield process
        except BaseException:
            process.kill()
            raise
        finally:
            self._release()

    @contextmanager
    def start_bulk(self, script: str, label: str) -> Iterator[RemoteProcess]:
        """Like `start`, for a command that takes a large stream on stdin (a restore).

        A transport may run it over a faster path; the default is `start`.
        """
        with self.start(script, label) as process:
            yield process

    def run(self, script: str, label: str, stdin: bytes = b"", check: bool = True) -> CommandResult:
        """Run `script` to its end, feeding it `stdin`, and return its output.

        Raises CommandError on a non-zero exit when `check` (the default),
        TransportError when the host cannot be reached.
        """
        with self.start(script, label) as process:
            result = process.run_to_end(stdin)
        if check and result.status != 0:
            raise CommandError(self.name, label, result.status, result.stderr)
        return result

    def run_standalone(self, script: str, label: str, stdin: bytes = b"") -> CommandResult:
        """Like `run` with `check` off, on `start_bulk`'s path: for a command in a
        process that runs no other through `start` (a restore), which then opens no
        connection of its own (and loads no SSH library) for it. Raises TransportError
        when the host cannot be reached (through the OpenSSH client: exit status 255)."""
        with self.start_bulk(script, label) as process:
            return process.run_to_end(stdin)
