"""The `ssh` transport: scripts run on a remote host over one reused paramiko connection.

Host keys are checked against the known_hosts file the config names, and only
there: an unknown or changed key refuses the connection. Two paramiko traps are
handled here:

- paramiko starts its own rekey every 2^29 bytes, and a long exec stream then
  stalls with "Key-exchange timed out" (paramiko #822). Rekeying is left to the
  server, whose limits (OpenSSH's RekeyLimit) paramiko follows correctly.
- A command whose stderr is not read fills the channel window and stalls stdout
  (paramiko #1778, #448): stderr is drained by a thread of its own.

A channel's stdout is buffered as the packets that carried it (PacketPipe), not
in paramiko's byte array, which cost two page faults for every 4 KiB streamed.

paramiko (and cryptography under it) is imported on the first paramiko connection,
not with this module: a command that only streams through the OpenSSH client
(`start_bulk`, `run_standalone`: a restore) never loads it, about a third of a
second of CPU at start-up.
"""

from __future__ import annotations

import contextlib
import secrets
import shlex
import shutil
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from daemon.transport import openssh
from daemon.transport.base import (
    CommandResult,
    HostKeyError,
    RemoteProcess,
    StderrTail,
    Transport,
    TransportError,
)
from daemon.transport.channel_io import receive, send_all, send_eof
from daemon.transport.watched import WATCHED

if TYPE_CHECKING:
    import paramiko

# Effectively never: rekeying is left to the server (see the module docstring).
_NO_CLIENT_REKEY = 2**40
# aes128-gcm is the fastest cipher both paramiko and OpenSSH offer; the others follow
# in paramiko's own order for servers that lack it.
_CIPHER_PREFERENCE = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "aes128-ctr")
# A large window and packets keep the per-packet Python cost low enough for paramiko
# to read at the speed of OpenSSH on a fast link (bench/backup.py measures it). The
# window is also how much paramiko buffers when the reader is slower than the host
# (an upload waiting for a free slot), so it bounds memory too: 8 MiB reads at about
# OpenSSH's speed here; 4 MiB loses a fifth of it.
CHANNEL_WINDOW = 8 * 1024 * 1024
CHANNEL_MAX_PACKET = 1024 * 1024
# How long a channel closed under its reader waits for paramiko to mark the connection
# down (see SSHProcess._link_down); a link going down is marked within milliseconds.
LINK_SETTLE = 1.0
# Seconds a kill waits for the host to signal the command's wrapper (SSHProcess.kill).
KILL_WAIT = 5.0
# Host key algorithms paramiko may negotiate for each key type a known_hosts line names.
_KEY_ALGORITHMS = {
    "ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"),
}


class SSHTransport(Transport):
    """One host reached over SSH; connects on first use and reconnects after a drop."""

    read_ahead = CHANNEL_WINDOW

    def __init__(
        self,
        name: str,
        address: str,
        *,
        port: int,
        user: str,
        known_hosts: Path,
        key_file: Path | None = None,
        connect_timeout: float = 15.0,
        command_timeout: float = 3600.0,
        keepalive: int = 30,
        max_sessions: int = 4,
    ) -> None:
        self.name = name
        self._address = address
        self._port = port
        self._user = user
        self._known_hosts = known_hosts
        self._key_file = key_file
        self._connect_timeout = connect_timeout
        self._command_timeout = command_timeout
        self._keepalive = keepalive
        self._slots = threading.BoundedSemaphore(max_sessions)
        self._lock = threading.Lock()
        self._connection: paramiko.Transport | None = None

    def _spawn(self, script: str, label: str) -> SSHProcess:
        import paramiko  # on first use (module docstring)

        from daemon.transport.packet_pipe import PacketPipe  # subclasses paramiko's pipe

        self._slots.acquire()
        try:
            connection = self.connection()
            try:
                channel = connection.open_session(
                    window_size=CHANNEL_WINDOW, max_packet_size=CHANNEL_MAX_PACKET
                )
                # Before the command starts, so no output has arrived yet.
                channel.in_buffer = PacketPipe()
                channel.settimeout(self._command_timeout)
                token = secrets.token_hex(8)
                channel.exec_command(_remote_command(script, token))
            except (paramiko.SSHException, OSError, EOFError) as error:
                # EOFError: paramiko's word for a link that went down under it.
                if isinstance(error, EOFError) or not connection.is_active():
                    raise TransportError(
                        f"connection to {self.name} was lost while starting {label}"
                    ) from error
                raise TransportError(
                    f"cannot start {label} on {self.name}: {error or type(error).__name__}"
                ) from error
        except BaseException:
            self._slots.release()
            raise
        return SSHProcess(self.name, label, connection, channel, self._command_timeout, token)

    def _release(self) -> None:
        self._slots.release()

    @contextmanager
    def start_bulk(self, script: str, label: str) -> Iterator[RemoteProcess]:
        """Run `script` through the OpenSSH client when one is installed (see
        daemon.transport.openssh), else over the paramiko connection.

        Raises TransportError when the client cannot be started. A connection or
        host key failure shows as the command's exit status 255 and ssh's stderr.
        """
        if shutil.which("ssh") is None:
            with self.start(script, label) as process:
                yield process
            return
        argv = openssh.openssh_argv(
            script,
            address=self._address,
            port=self._port,
            user=self._user,
            known_hosts=self._known_hosts,
            key_file=self._key_file,
            connect_timeout=self._connect_timeout,
            keepalive=self._keepalive,
        )
        self._slots.acquire()
        try:
            process = openssh.spawn(self.name, label, argv, self._command_timeout)
            try:
                yield process
            except BaseException:
                process.kill()
                raise
        finally:
            self._slots.release()

    def connection(self) -> paramiko.Transport:
        """Return the live connection, opening it first if needed.

        Raises HostKeyError when the host key is unknown or changed, TransportError
        when the host cannot be reached or refuses the key.
        """
        with self._lock:
            if self._connection is None or not self._connection.is_active():
                self._connection = self._connect()
            return self._connection

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def _connect(self) -> paramiko.Transport:
        import paramiko  # on first use (module docstring)

        where = f"{self.name} ({self._user}@{self._address}:{self._port})"
        known = self._known_keys()
        try:
            sock = socket.create_connection(
                (self._address, self._port), timeout=self._connect_timeout
            )
        except OSError as error:
            raise TransportError(f"cannot reach {where}: {error}") from error
        # As OpenSSH does: small requests (a channel opening, a command) go out at once
        # instead of waiting out the peer's delayed acknowledgement.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection = paramiko.Transport(sock)
        try:
            _tune(connection, known)
            connection.start_client(timeout=self._connect_timeout)
            self._check_host_key(connection, known, where)
            self._authenticate(connection, where)
        except BaseException:
            connection.close()
            raise
        connection.set_keepalive(self._keepalive)
        return connection

    def _known_keys(self) -> dict[str, paramiko.PKey]:
        """Return the known_hosts keys for this host by key type.

        Raises HostKeyError when the file is unreadable or has no line for the host.
        """
        import paramiko  # on first use (module docstring)

        try:
            host_keys = paramiko.HostKeys(str(self._known_hosts))
        except OSError as error:
            raise HostKeyError(
                f"cannot read known_hosts {self._known_hosts} for {self.name}: {error}"
            ) from error
        lookup_name = self._address if self._port == 22 else f"[{self._address}]:{self._port}"
        entry = host_keys.lookup(lookup_name)
        if not entry:
            raise HostKeyError(
                f"no key for {lookup_name} in {self._known_hosts}: add the host's key "
                f"(ssh-keyscan -p {self._port} {self._address}, checked out of band) "
                "before Lapse may connect"
            )
        return {key_type: entry[key_type] for key_type in entry}

    def _check_host_key(
        self, connection: paramiko.Transport, known: dict[str, paramiko.PKey], where: str
    ) -> None:
        offered = connection.get_remote_server_key()
        expected = known.get(offered.get_name())
        if expected is None or expected != offered:
            raise HostKeyError(
                f"host key of {where} does not match {self._known_hosts}: the server offered "
                f"{offered.get_name()} {offered.fingerprint}; refusing to connect (a changed "
                "key may mean the host was reinstalled, or that someone is in between)"
            )

    def _authenticate(self, connection: paramiko.Transport, where: str) -> None:
        import paramiko  # on first use (module docstring)

        keys = self._client_keys(where)
        errors = []
        for key in keys:
            try:
                connection.auth_publickey(self._user, key)
            except paramiko.AuthenticationException as error:
                errors.append(f"{key.get_name()}: {error}")
                continue
            except paramiko.SSHException as error:
                raise TransportError(f"authentication with {where} failed: {error}") from error
            if connection.is_authenticated():
                return
        raise TransportError(
            f"{where} refused every key offered ({'; '.join(errors) or 'no keys'})"
        )

    def _client_keys(self, where: str) -> list[paramiko.PKey]:
        import paramiko  # on first use (module docstring)

        if self._key_file is not None:
            try:
                return [paramiko.PKey.from_path(self._key_file)]
            except (OSError, paramiko.SSHException, ValueError) as error:
                raise TransportError(
                    f"cannot load the SSH key {self._key_file} for {where}: {error}"
                ) from error
        agent_keys = list(paramiko.Agent().get_keys())
        if not agent_keys:
            raise TransportError(
                f"no key for {where}: set 'key_file' for the host or load a key into ssh-agent"
            )
        return agent_keys  # type: ignore[return-value]


class SSHProcess(RemoteProcess):
    """A command running on an SSH channel, its stderr drained by a thread."""

    def __init__(
        self,
        host: str,
        label: str,
        connection: paramiko.Transport,
        channel: paramiko.Channel,
        timeout: float,
        token: str,
    ) -> None:
        """`token` names the command's wrapper on the host (see _remote_command)."""
        import paramiko  # loaded already: the connection is paramiko's

        self.host = host
        self.label = label
        # What a write or close on a channel raises when the link or the command is gone.
        self._channel_errors = (OSError, EOFError, paramiko.SSHException)
        self._connection = connection
        self._channel = channel
        self._timeout = timeout
        self._token = token
        self._stderr = StderrTail()
        self._killed = False
        self._drainer = threading.Thread(target=self._drain, daemon=True, name="stderr")
        self._drainer.start()

    def read(self, size: int) -> bytes:
        try:
            data = receive(self._connection, self._channel, size)
        except TimeoutError:
            raise TransportError(
                f"{self.label} on {self.host} sent nothing for {self._timeout:g} s"
            ) from None
        except EOFError as error:
            # paramiko's word for a link that went down under it: here while telling the
            # host it may send more (a window adjustment), before the reader saw a close.
            raise self._lost() from error
        # The end of the output is the host's EOF; a channel closed without one (and not
        # by kill()) may have lost its link mid-stream.
        if not data and not self._channel.eof_received and self._link_down():
            raise self._lost()
        return data

    def write(self, data: bytes) -> None:
        try:
            send_all(self._connection, self._channel, data)
        except self._channel_errors as error:
            # EOFError: paramiko's word for a link that went down under it.
            if isinstance(error, EOFError) or self._link_down():
                raise self._lost() from error
            raise TransportError(
                f"{self.label} on {self.host} stopped reading its input: {error}"
            ) from error

    def close_stdin(self) -> None:
        try:
            send_eof(self._connection, self._channel)
        except self._channel_errors as error:
            # EOFError: paramiko's word for a link that went down under it.
            raise self._lost() from error

    def wait(self) -> CommandResult:
        if not self._channel.status_event.wait(self._timeout):
            self.kill()
            raise TransportError(
                f"{self.label} on {self.host} did not finish within {self._timeout:g} s"
            )
        self._drainer.join(timeout=self._timeout)
        if not self._channel.exit_status_ready() and self._link_down():
            raise self._lost()
        # -1: the channel closed without an exit status (the command died by a signal).
        status = self._channel.exit_status
        self._channel.close()
        return CommandResult(status, b"", self._stderr.text())

    def kill(self) -> None:
        # Closing the channel alone stops nothing: without a pty sshd only closes the
        # command's pipes, and a command that writes nothing runs on. sshd's "signal"
        # request is refused for root logins, so a second command on the connection
        # sends SIGTERM to this one's wrapper, which kills everything the command
        # started (daemon.transport.watched). On a link already down there is nobody to
        # tell: that command and the close fail, and the host's watchdog acts on the
        # lost session.
        self._killed = True
        ended = self._channel.exit_status_ready() or not self._connection.is_active()
        if not ended:
            with contextlib.suppress(*self._channel_errors):
                self._terminate()
        with contextlib.suppress(*self._channel_errors):
            self._channel.close()
        self._drainer.join(timeout=5)

    def _terminate(self) -> None:
        """Have the host send SIGTERM to this command's wrapper, waiting at most
        KILL_WAIT seconds for it. Raises what the connection raises when it is gone."""
        channel = self._connection.open_session(timeout=KILL_WAIT)
        try:
            channel.settimeout(KILL_WAIT)
            channel.exec_command(_remote_command(_TERMINATE.replace("TOKEN", self._token)))
            channel.status_event.wait(KILL_WAIT)
        finally:
            channel.close()

    def _drain(self) -> None:
        while True:
            try:
                chunk = receive(self._connection, self._channel, 1 << 16, stderr=True)
            except TimeoutError:
                if self._channel.closed:
                    return
                continue
            if not chunk:
                return
            self._stderr.add(chunk)

    def _link_down(self) -> bool:
        """Whether the connection under this channel went down.

        paramiko closes a dead link's channels first and marks the connection inactive
        only after: a reader woken by the close may still see it active. So its thread
        is given LINK_SETTLE seconds to finish going down (it ends at once then); not
        after kill(), which closed the channel on purpose.
        """
        if self._connection.is_active() and not self._killed:
            self._connection.join(LINK_SETTLE)
        return not self._connection.is_active()

    def _lost(self) -> TransportError:
        return TransportError(f"connection to {self.host} was lost while {self.label} ran")


def _tune(connection: paramiko.Transport, known: dict[str, paramiko.PKey]) -> None:
    """Set cipher order, host key algorithms and rekey limits before the handshake."""
    connection.packetizer.REKEY_BYTES = _NO_CLIENT_REKEY
    connection.packetizer.REKEY_PACKETS = _NO_CLIENT_REKEY
    options = connection.get_security_options()
    available = tuple(options.ciphers)
    options.ciphers = tuple(c for c in _CIPHER_PREFERENCE if c in available) + tuple(
        c for c in available if c not in _CIPHER_PREFERENCE
    )
    # Negotiate only host key types known_hosts vouches for, as OpenSSH does: a server
    # that also has an RSA key must not be asked for one we cannot check.
    wanted = [alg for key_type in known for alg in _KEY_ALGORITHMS.get(key_type, (key_type,))]
    usable = tuple(alg for alg in options.key_types if alg in wanted)
    if usable:
        options.key_types = usable


# Sends SIGTERM to the wrapper started as `bash --norc -c WATCHED lapse-TOKEN ...`: the
# first process of its session (sshd starts each command in a session of its own, and
# the login shell execs the wrapper), its fifth argument the token. This script's own
# wrapper names it only inside its script, so it never matches itself.
_TERMINATE = r"""
for entry in /proc/[0-9]*/stat; do
  pid=${entry#/proc/}
  pid=${pid%/stat}
  read -r line < "$entry" 2>/dev/null || continue
  line=${line##*') '}
  fields=($line)
  [[ ${fields[3]} == "$pid" ]] || continue
  n=0
  while IFS= read -r -d '' arg; do
    if (( ++n == 5 )); then
      [[ $arg == lapse-TOKEN ]] && kill -TERM "$pid"
      break
    fi
  done < "/proc/$pid/cmdline" 2>/dev/null
done
exit 0
"""


def _remote_command(script: str, token: str | None = None) -> str:
    """Wrap `script` for the remote login shell: bash with pipefail, whatever the shell is,
    killed with everything it started when the SSH session's sshd process ends or the
    wrapper gets SIGTERM, and never started when that sshd ended before the login shell
    got to it. `token` names the wrapper (its $0 is `lapse-TOKEN`), so that _TERMINATE
    finds it.

    `--norc`: bash started by sshd reads ~/.bashrc even for a command, and `exec` puts the
    new bash back at the top shell level, so it would read it a second time. The login
    shell already ran it and the environment it exported is inherited; running it again
    costs every command its time (a `pyenv init` or `nvm` hook: 100 ms and more) and lets
    whatever it prints a second time into the command's output. `"$PPID"` is expanded by
    the login shell: its parent, the session's sshd."""
    name = f"lapse-{token}" if token else "lapse"
    watched = shlex.quote(WATCHED)
    return f'exec bash --norc -c {watched} {name} "$PPID" {shlex.quote(script)}'
