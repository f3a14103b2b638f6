"""Reading, writing and ending the input of a paramiko channel, with no message sent on
the channel after its close.

paramiko builds a channel's data, window adjustment and EOF messages under the channel's
lock and sends them after releasing it. A command that ends meanwhile has its channel
closed by paramiko's own thread, which builds and sends the CLOSE in the same way: the
sends can cross. A message that reaches OpenSSH after the CLOSE names a channel it has
freed, and sshd drops the whole connection ("ieof packet referred to nonexistent
channel") with every command on it (paramiko issues 1115 and 1705, open). With four
commands at a time that end at once, one connection in about eight was lost that way.

Here each of those messages is built as paramiko builds it and sent only after a look,
under the connection's send lock that every message to the host passes through, at
whether the channel is closed (the approach paramiko-ng took for the EOF): a channel not
closed at that moment has not had its CLOSE sent, and cannot before this message goes
out. The channel's lock is never held while sending, as in paramiko: a send waits out a
key exchange, which needs paramiko's thread, which may need that lock.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import paramiko

# How often a send waiting for a key exchange looks whether the link is still up.
KEX_POLL = 0.1


def send_eof(connection: paramiko.Transport, channel: paramiko.Channel) -> None:
    """Tell the host that the command on `channel` (of `connection`) gets no more input,
    unless the channel is closed already (its command ended: it needs no EOF) or the
    EOF went out before.

    Nothing is sent on a connection already down (what paramiko does): the reads that
    follow tell whether the command's output all arrived. Raises EOFError when the
    connection goes down under the send, paramiko.SSHException when a key exchange in
    progress does not end within paramiko's limit.
    """
    from paramiko.common import cMSG_CHANNEL_EOF

    with channel.lock:
        if channel.eof_sent or channel.closed or not channel.active:
            return
        # Claimed before it is sent, so that a close built meanwhile adds no second EOF.
        channel.eof_sent = True
        message = _message_for(channel, cMSG_CHANNEL_EOF)
    _send_while_open(connection, channel, message)


def send_all(connection: paramiko.Transport, channel: paramiko.Channel, data: bytes) -> None:
    """Send all of `data` to the command's input on `channel` (of `connection`), as
    paramiko's `Channel.sendall` does, waiting for the host's window as it does.

    Raises OSError when the channel is closed (the command ended or stopped reading),
    EOFError when the connection is or goes down, TimeoutError when the host's window
    stays shut for the channel's timeout, paramiko.SSHException when a key exchange does
    not end in time.
    """
    from paramiko.common import cMSG_CHANNEL_DATA

    view = memoryview(data)
    while view:
        with channel.lock:
            if channel.closed:
                raise OSError("the channel is closed")
            # Waits for window under the channel's lock, as paramiko's own send does.
            size = channel._wait_for_send_window(len(view))  # type: ignore[attr-defined]
            if size == 0:  # closed, or the input ended, while waiting
                raise OSError("the channel is closed")
            message = _message_for(channel, cMSG_CHANNEL_DATA)
            message.add_string(bytes(view[:size]))
        if not _send_while_open(connection, channel, message):
            if not connection.is_active():
                raise EOFError("the connection went down")
            raise OSError("the channel is closed")
        view = view[size:]


def receive(
    connection: paramiko.Transport,
    channel: paramiko.Channel,
    size: int,
    *,
    stderr: bool = False,
) -> bytes:
    """Read up to `size` bytes of the command's stdout (its stderr when `stderr`) on
    `channel` (of `connection`), as paramiko's `Channel.recv` does: b"" at the end.
    Opens the host's window again once enough was read, unless the channel closed.

    Raises TimeoutError when nothing arrives within the channel's timeout, EOFError when
    the connection goes down under the window's message, paramiko.SSHException when a
    key exchange does not end in time.
    """
    from paramiko.buffered_pipe import PipeTimeout
    from paramiko.common import cMSG_CHANNEL_WINDOW_ADJUST

    buffer = channel.in_stderr_buffer if stderr else channel.in_buffer
    try:
        data: bytes = buffer.read(size, channel.timeout)
    except PipeTimeout:
        raise TimeoutError from None
    # Counts what was read; 0 until a tenth of the window was, and once closed.
    grant = channel._check_add_window(len(data))  # type: ignore[attr-defined]
    if grant > 0:
        message = _message_for(channel, cMSG_CHANNEL_WINDOW_ADJUST)
        message.add_int(grant)
        _send_while_open(connection, channel, message)
    return data


def _message_for(channel: paramiko.Channel, kind: bytes) -> paramiko.Message:
    """Return a message of type `kind` (one of paramiko's cMSG_CHANNEL_* bytes) addressed
    to `channel` on the host's side, for the caller to complete."""
    import paramiko  # loaded already: the channel is paramiko's

    message = paramiko.Message()
    message.add_byte(kind)
    message.add_int(channel.remote_chanid)
    return message


def _send_while_open(
    connection: paramiko.Transport, channel: paramiko.Channel, message: paramiko.Message
) -> bool:
    """Send `message` unless `channel` is closed when the send lock is taken (paramiko's
    `_send_user_message`, with that look added). Returns whether it was sent: not when
    the channel closed or the connection is down.

    Raises EOFError when the connection goes down under the send, paramiko.SSHException
    when a key exchange in progress does not end within paramiko's limit.
    """
    import paramiko  # loaded already: the channel is paramiko's

    limit = time.monotonic() + connection.clear_to_send_timeout
    while True:
        connection.clear_to_send.wait(KEX_POLL)
        if not connection.is_active():
            return False
        with connection.clear_to_send_lock:
            if connection.clear_to_send.is_set():
                if channel.closed:
                    return False
                # The send paramiko's own user messages end in; not in its stubs.
                connection._send_message(message)  # type: ignore[attr-defined]
                return True
        if time.monotonic() > limit:
            raise paramiko.SSHException("key exchange did not end in time for a channel message")
