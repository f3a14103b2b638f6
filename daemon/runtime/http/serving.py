"""Serving an ASGI app with uvicorn in a thread of the daemon, with the deadlines it lacks.

uvicorn answers a malformed request line or header (a Content-Length of `abc`, a
stray byte) with 400 itself, and past `limit_concurrency` connections it answers
503. It has no deadline for a client that sends half a request and stops, or
trickles a byte at a time: `GuardedH11Protocol` adds two, read afresh from
`limits()` for every connection so that a test can shorten them:

- a read deadline: while the server waits for the client (a request not fully
  received), `read_timeout` seconds of silence close the connection;
- a connection deadline: a connection open longer than `connection_timeout` is cut,
  so a trickling client cannot hold it either.

Nothing holds a thread meanwhile: connections are served by one event loop, and only
the work a request asks for runs in its worker threads.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import h11
import structlog
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

log = structlog.get_logger("lapse.http")

# How long stop() waits for the server thread to finish its connections.
_STOP_WAIT = 5.0


@dataclass(frozen=True)
class Limits:
    """The deadlines (seconds) and the number of connections one listener allows."""

    read_timeout: float
    connection_timeout: float
    max_connections: int


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a read deadline and a connection deadline (see above)."""

    limits: Callable[[], Limits]

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        limits = self.limits()
        self._read_timeout = limits.read_timeout
        self._read_timer: asyncio.TimerHandle | None = None
        self._deadline = self.loop.call_later(limits.connection_timeout, self._cut, "deadline")
        self._arm_read_timer()

    def data_received(self, data: bytes) -> None:
        self._arm_read_timer()
        super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._deadline.cancel()
        if self._read_timer is not None:
            self._read_timer.cancel()
        super().connection_lost(exc)

    def _arm_read_timer(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
        self._read_timer = self.loop.call_later(self._read_timeout, self._read_timed_out)

    def _read_timed_out(self) -> None:
        # Only silence while the client owes us bytes counts: a request not begun or
        # half sent (IDLE, SEND_BODY). While the app works on a whole request, wait on.
        if self.conn.their_state in (h11.IDLE, h11.SEND_BODY):
            self._cut("read timeout")
        else:
            self._arm_read_timer()

    def _cut(self, why: str) -> None:
        if self.transport.is_closing():
            return
        if why == "deadline" or self.conn.their_state is h11.SEND_BODY:
            log.warning("http connection cut", reason=why, peer=self.client and self.client[0])
        self.transport.close()
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True
            self.cycle.message_event.set()


class ListenerThread:
    """One ASGI app served on one address (host:port, port 0 for any) by uvicorn, in a
    background thread, with `limits` read for every connection."""

    def __init__(
        self, app: Any, listen: str, limits: Callable[[], Limits], name: str = "http"
    ) -> None:
        """Bind `listen` at once (so `port` is known); serving starts with `start`.

        Raises OSError when the address cannot be bound.
        """
        host, _, port = listen.rpartition(":")
        host = host.strip("[]") or "127.0.0.1"
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, int(port)))
        self._socket.listen(64)
        protocol = type("Protocol", (GuardedH11Protocol,), {"limits": staticmethod(limits)})
        config = uvicorn.Config(
            app,
            http=protocol,
            ws="none",
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            # The peer is the TCP peer: the console decides itself which proxies it
            # believes (trusted_proxies), and X-Forwarded-For is nobody's word here.
            proxy_headers=False,
            # uvicorn counts the connection asking too: one more lets exactly
            # max_connections be served at once, and answers 503 past them.
            limit_concurrency=limits().max_connections + 1,
            timeout_keep_alive=int(max(1, limits().read_timeout)),
            timeout_graceful_shutdown=int(_STOP_WAIT),
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name=name, daemon=True
        )
        self.name = name

    @property
    def port(self) -> int:
        """The port actually bound (useful with port 0)."""
        return int(self._socket.getsockname()[1])

    def start(self) -> None:
        """Serve in the background thread; returns once the server accepts connections."""
        self._thread.start()
        started = threading.Event()
        while not self._server.started and self._thread.is_alive():
            started.wait(0.01)
        log.info("http listener running", listener=self.name, address=self._socket.getsockname())

    def stop(self) -> None:
        """Stop serving (open connections get up to a few seconds) and close the socket."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(_STOP_WAIT * 2)
        self._socket.close()
