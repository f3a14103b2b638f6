"""The `local` transport: scripts run on this machine through subprocess.

For operators running Lapse on the hosting server itself (the embedded default).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import threading
from typing import IO

from daemon.transport.base import (
    CommandResult,
    RemoteProcess,
    StderrTail,
    Transport,
    TransportError,
)
from daemon.transport.watched import WATCHED

# Seconds a killed command's wrapper gets to end what the script started.
KILL_WAIT = 5.0


class LocalProcess(RemoteProcess):
    """A process on this machine with its stderr drained by a thread: a script in the
    command wrapper (`watched`, see daemon.transport.watched) or the OpenSSH client."""

    def __init__(
        self,
        host: str,
        label: str,
        popen: subprocess.Popen[bytes],
        timeout: float,
        *,
        watched: bool = False,
    ):
        self.host = host
        self.label = label
        self._popen = popen
        self._watched = watched
        self._timeout = timeout
        self._stderr = StderrTail()
        assert popen.stdout is not None and popen.stderr is not None
        # poll, not select: a busy daemon may hold file descriptors past select's 1024.
        self._stdout_ready = select.poll()
        self._stdout_ready.register(popen.stdout, select.POLLIN)  # end of output counts too
        self._drainer = threading.Thread(
            target=_drain, args=(popen.stderr, self._stderr), daemon=True, name="stderr"
        )
        self._drainer.start()

    def read(self, size: int) -> bytes:
        stdout = self._popen.stdout
        assert stdout is not None
        # Wait no longer than the command timeout, as an SSH channel does: a command that
        # hangs without a word must not hold its reader for ever. read1 reads the pipe
        # straight into its result when nothing is buffered, and so never leaves bytes
        # buffered that poll would not see.
        if not self._stdout_ready.poll(self._timeout * 1000):
            raise TransportError(
                f"{self.label} on {self.host} sent nothing for {self._timeout:g} s"
            )
        return stdout.read1(size)  # type: ignore[attr-defined,no-any-return]

    def write(self, data: bytes) -> None:
        assert self._popen.stdin is not None
        try:
            self._popen.stdin.write(data)
            self._popen.stdin.flush()
        except BrokenPipeError:
            raise TransportError(f"{self.label} on {self.host} stopped reading its input") from None

    def close_stdin(self) -> None:
        assert self._popen.stdin is not None
        # A command that ended without reading everything breaks the pipe; its status
        # tells why, so that is not an error here.
        with contextlib.suppress(BrokenPipeError):
            self._popen.stdin.close()

    def wait(self) -> CommandResult:
        try:
            status = self._popen.wait(timeout=self._timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise TransportError(
                f"{self.label} on {self.host} did not finish within {self._timeout:g} s"
            ) from None
        self._drainer.join()
        for stream in (self._popen.stdout, self._popen.stdin):
            if stream is not None and not stream.closed:
                stream.close()
        # A shell reports death by signal as a negative status; keep it visible as such.
        return CommandResult(status, b"", self._stderr.text())

    def kill(self) -> None:
        if self._popen.poll() is None and self._watched:
            # The wrapper kills everything the script started on SIGTERM: the rest of a
            # pipeline (tar | zstd), and what `timeout` or job control moved into process
            # groups of their own.
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._popen.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._popen.wait(timeout=KILL_WAIT)
        if self._popen.poll() is None:
            # The whole process group (see start_process): killing the process alone
            # would leave the rest of a pipeline running, orphaned.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._popen.pid, signal.SIGKILL)
            self._popen.wait()
        self._drainer.join(timeout=5)


def start_process(argv: list[str]) -> subprocess.Popen[bytes]:
    """Start `argv` with piped stdin, stdout and stderr, in a session (and so a process
    group) of its own, which LocalProcess.kill kills whole. Raises OSError when it
    cannot be started."""
    return subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def _drain(stream: IO[bytes], tail: StderrTail) -> None:
    while chunk := stream.read1(1 << 16):  # type: ignore[attr-defined]
        tail.add(chunk)
    stream.close()


class LocalTransport(Transport):
    """Runs scripts with the privileges of the Lapse process itself."""

    def __init__(self, name: str, command_timeout: float = 3600.0, max_sessions: int = 4):
        self.name = name
        self._timeout = command_timeout
        self._slots = threading.BoundedSemaphore(max_sessions)

    def _spawn(self, script: str, label: str) -> LocalProcess:
        self._slots.acquire()
        try:
            # The wrapper watches this daemon: a command dies with the daemon that
            # started it, as over SSH (daemon.transport.watched).
            popen = start_process(
                ["bash", "--norc", "-c", WATCHED, "lapse", str(os.getpid()), script]
            )
        except OSError as error:
            self._slots.release()
            raise TransportError(f"cannot start bash on {self.name}: {error}") from error
        return LocalProcess(self.name, label, popen, self._timeout, watched=True)

    def _release(self) -> None:
        self._slots.release()

    def close(self) -> None:
        """Nothing to close: every command is its own process."""
