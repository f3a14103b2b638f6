"""A channel closed under its reader by a dying link is a lost connection, even while
paramiko has not yet marked the connection inactive (it closes the channels first)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, cast

import pytest

from daemon.transport import TransportError
from daemon.transport.ssh import SSHProcess, SSHTransport


class DyingConnection:
    """A paramiko Transport whose thread is going down: active until it is joined."""

    def __init__(self) -> None:
        self.active = True
        self.joins = 0

    def is_active(self) -> bool:
        return self.active

    def join(self, timeout: float | None = None) -> None:
        self.joins += 1
        self.active = False


class LiveConnection(DyingConnection):
    """A paramiko Transport that stays up: joining it only waits; the commands run on it
    (a kill's) are kept in `commands`."""

    def __init__(self) -> None:
        super().__init__()
        self.commands: list[str] = []

    def join(self, timeout: float | None = None) -> None:
        self.joins += 1

    def open_session(self, **options: object) -> KillChannel:
        return KillChannel(self.commands)


class KillChannel:
    """The channel a kill runs its command on: it ends at once."""

    def __init__(self, commands: list[str]) -> None:
        self.commands = commands
        self.status_event = threading.Event()

    def settimeout(self, timeout: float) -> None:
        pass

    def exec_command(self, command: str) -> None:
        self.commands.append(command)
        self.status_event.set()

    def close(self) -> None:
        pass


class LinkDownOnSend(DyingConnection):
    """A paramiko Transport whose socket is gone: anything sent raises EOFError, while its
    thread has not yet noticed (still active)."""

    def open_session(self, **options: object) -> None:
        raise EOFError


class Buffer:
    """A channel's buffer of what the host sent (paramiko's BufferedPipe): `data` once,
    then the end."""

    def __init__(self, data: bytes = b"") -> None:
        self.data = data

    def read(self, size: int, timeout: float | None = None) -> bytes:
        data, self.data = self.data[:size], self.data[size:]
        return data


class ClosedChannel:
    """A channel closed with nothing left to read, its stderr ended."""

    closed = True
    timeout = None
    remote_chanid = 0

    def __init__(self, *, eof_received: bool) -> None:
        self.eof_received = eof_received
        self.in_buffer = Buffer()
        self.in_stderr_buffer = Buffer()

    def exit_status_ready(self) -> bool:
        return False  # closed without a status: the command may still run

    def _check_add_window(self, size: int) -> int:
        return 0  # a closed channel opens no window

    def close(self) -> None:
        pass


def _process(connection: DyingConnection, channel: ClosedChannel) -> SSHProcess:
    return SSHProcess(
        "web1", "files archive", cast(Any, connection), cast(Any, channel), 60.0, "0" * 16
    )


def test_a_channel_closed_without_eof_while_the_link_goes_down_is_lost() -> None:
    connection = DyingConnection()
    process = _process(connection, ClosedChannel(eof_received=False))
    with pytest.raises(TransportError, match="connection to web1 was lost while files archive"):
        process.read(1 << 16)
    assert connection.joins == 1


def test_the_hosts_eof_is_the_end_of_the_output_without_waiting() -> None:
    connection = DyingConnection()
    process = _process(connection, ClosedChannel(eof_received=True))
    assert process.read(1 << 16) == b""
    assert connection.joins == 0


def test_a_channel_closed_on_a_live_link_ends_the_output() -> None:
    connection = LiveConnection()
    process = _process(connection, ClosedChannel(eof_received=False))
    assert process.read(1 << 16) == b""
    assert connection.joins == 1


def test_a_killed_channel_ends_the_output_without_waiting_for_the_link() -> None:
    connection = LiveConnection()
    process = _process(connection, ClosedChannel(eof_received=False))
    process.kill()
    assert process.read(1 << 16) == b""
    assert connection.joins == 0
    # The host was asked to end the command's wrapper, named by its token.
    [command] = connection.commands
    assert "lapse-" + "0" * 16 in command


class EndedChannel(ClosedChannel):
    """A channel whose command already gave its exit status."""

    def exit_status_ready(self) -> bool:
        return True


def test_killing_a_command_that_ended_asks_the_host_nothing() -> None:
    connection = LiveConnection()
    process = _process(connection, EndedChannel(eof_received=True))
    process.kill()
    assert connection.commands == []


class DeadSocketConnection(LiveConnection):
    """A paramiko Transport whose socket is gone while its thread has not yet noticed:
    free to send, and the send raises EOFError."""

    def __init__(self) -> None:
        super().__init__()
        self.clear_to_send = threading.Event()
        self.clear_to_send.set()
        self.clear_to_send_lock = threading.Lock()
        self.clear_to_send_timeout = 30.0

    def _send_message(self, message: object) -> None:
        raise EOFError


class WindowAdjustOnDeadLink(ClosedChannel):
    """An open channel whose read opens the host's window again: that message goes out
    over the dead socket."""

    closed = False

    def __init__(self, *, eof_received: bool) -> None:
        super().__init__(eof_received=eof_received)
        self.in_buffer = Buffer(b"x" * 1024)

    def _check_add_window(self, size: int) -> int:
        return size


def test_a_read_that_meets_the_dead_socket_is_lost() -> None:
    process = _process(DeadSocketConnection(), WindowAdjustOnDeadLink(eof_received=False))
    with pytest.raises(TransportError, match="connection to web1 was lost while files archive"):
        process.read(1 << 20)


def test_a_command_started_on_a_dead_socket_is_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    transport = SSHTransport("web1", "127.0.0.1", port=22, user="root", known_hosts=Path("/x"))
    monkeypatch.setattr(transport, "connection", LinkDownOnSend)
    with pytest.raises(TransportError, match="connection to web1 was lost while starting dump"):
        transport.run("true", "dump")
