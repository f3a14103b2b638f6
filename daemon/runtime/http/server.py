"""The HTTP listener: POST /webhooks/stripe, POST /webhooks/generic, GET /healthz, /metrics.

A valid payment event is recorded (its id makes a replay a no-op) and the account
is evaluated at once: billing is read afresh, and if it is paid, reactivation and
the unsuspend phase follow within seconds. An invalid signature gets 401 and a
log line; nothing else is said to the caller.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import IntegrityError

from daemon.billing import fields
from daemon.config.schema import WebhooksConfig
from daemon.domain.errors import LapseError
from daemon.lifecycle.engine import LifecycleEngine
from daemon.runtime.http.metrics import LapseCollector, make_registry
from daemon.runtime.http.requests import BodyError, read_body
from daemon.runtime.http.signatures import SignatureError, verify_hmac, verify_stripe
from daemon.store.models import Account, WebhookEvent
from daemon.store.payment_events import record_payment

log = structlog.get_logger("lapse.http")

# Stripe events that can mean an invoice got paid; others are acknowledged and ignored.
_STRIPE_PAYMENT_EVENTS = {
    "invoice.paid",
    "invoice.payment_succeeded",
    "charge.succeeded",
    "payment_intent.succeeded",
}
_MAX_BODY = 1024 * 1024
# A webhook is a few kilobytes sent at once: a read waiting longer than READ_TIMEOUT,
# or a connection open longer than CONNECTION_TIMEOUT, is a client holding a thread.
READ_TIMEOUT = 5.0
CONNECTION_TIMEOUT = 15.0
# Connections served at once; webhooks come one at a time, scrapes every few seconds.
MAX_CONNECTIONS = 32
_BUSY = b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
# The state database keeps an event's key ("<source>:<id>") in 200 characters.
_MAX_EVENT_KEY = 200


class BoundedHTTPServer(ThreadingHTTPServer):
    """A threading server that serves at most MAX_CONNECTIONS at once.

    Each connection is bounded in time (the handler's deadlines); this bounds them in
    number, so a flood of connections cannot start a thread each. One over the limit
    is answered 503 at once and closed.
    """

    # socketserver's default backlog of 5 drops further SYNs (the client retries a second
    # later): room for a burst of connections to reach the limit check at once.
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            with contextlib.suppress(OSError):
                request.sendall(_BUSY)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()  # no thread was started to release it
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class BadEventError(LapseError):
    """The event is signed but not understood (400)."""


class Scheduling(Protocol):
    """What the listener asks of the daemon's scheduling: act on a recorded payment now,
    and when billing was last synced (None before the first sync, or on a follower)."""

    @property
    def last_sync(self) -> datetime | None:
        """When billing was last synced here."""

    def wake_now(self, account_id: str) -> None:
        """A payment event for the account was recorded: act on it now."""


class LapseHTTP:
    """Owns the listener thread and the handlers' access to the daemon."""

    def __init__(
        self,
        lifecycle: LifecycleEngine,
        scheduler: Scheduling,
        listen: str,
        *,
        webhooks: WebhooksConfig,
        sync_interval: timedelta,
    ) -> None:
        """Bind `listen` (host:port) for the lifecycle's state database, clock and brake,
        with the `[webhooks]` secrets and the sync interval /healthz measures staleness
        by; serving starts with `start`."""
        host, _, port = listen.rpartition(":")
        self.sessions = lifecycle.sessions
        self.clock = lifecycle.clock
        self.brake = lifecycle.brake
        self.scheduler = scheduler
        self.webhooks = webhooks
        self.sync_interval = sync_interval
        self.registry = make_registry(
            LapseCollector(lifecycle.sessions, lambda: scheduler.last_sync)
        )
        handler = type("Handler", (_Handler,), {"lapse": self})
        self.server = BoundedHTTPServer((host or "127.0.0.1", int(port)), handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, name="http", daemon=True)

    @property
    def port(self) -> int:
        """The port actually bound (useful with port 0)."""
        return int(self.server.server_address[1])

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread.start()
        log.info("http listener running", address=self.server.server_address)

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.server.shutdown()
        self.server.server_close()

    # -- what the handlers do -------------------------------------------------------

    def stripe_event(self, body: bytes, signature: str | None) -> tuple[int, str]:
        """Check and act on a Stripe event; return (status, message)."""
        config = self.webhooks
        if config.stripe_secret is None:
            return 404, "Stripe webhooks are not configured"
        verify_stripe(
            signature, body, config.stripe_secret.reveal(), self.clock(), config.tolerance
        )
        event = _json(body)
        event_type, event_id = event.get("type"), event.get("id")
        if not isinstance(event_id, str) or not isinstance(event_type, str):
            raise BadEventError("a Stripe event has 'id' and 'type'")
        if event_type not in _STRIPE_PAYMENT_EVENTS:
            return 200, f"{event_type} ignored"
        data = event.get("data", {})
        if not isinstance(data, dict):
            raise BadEventError(f"{event_type}: 'data' is not an object")
        obj = data.get("object", {})
        customer = obj.get("customer") if isinstance(obj, dict) else None
        if not isinstance(customer, str):
            raise BadEventError(f"{event_type} names no customer")
        return self._payment("stripe", f"stripe:{event_id}", customer)

    def generic_event(self, body: bytes, signature: str | None) -> tuple[int, str]:
        """Check and act on a generic HMAC-signed payment event; return (status, message)."""
        config = self.webhooks
        if config.hmac_secret is None:
            return 404, "generic webhooks are not configured"
        verify_hmac(signature, body, config.hmac_secret.reveal())
        event = _json(body)
        event_id, account_id = event.get("id"), event.get("account_id")
        if not isinstance(event_id, str) or not isinstance(account_id, str):
            raise BadEventError("the event needs 'id' and 'account_id' strings")
        at = event.get("at")
        if at is not None:
            try:
                moment = datetime.fromisoformat(str(at))
            except ValueError as error:
                raise BadEventError(f"'at' is not an ISO time: {at!r}") from error
            if moment.tzinfo is None:
                raise BadEventError("'at' needs a time zone")
            if abs(self.clock() - moment) > config.tolerance:
                raise SignatureError(f"event time {at} is outside the tolerance")
        return self._payment("generic", f"generic:{event_id}", account_id)

    def _payment(self, source: str, key: str, account_id: str) -> tuple[int, str]:
        try:
            account_id = fields.account_id(account_id)
        except fields.FieldError as error:
            raise BadEventError(str(error)) from None
        if len(key) > _MAX_EVENT_KEY:
            raise BadEventError(
                f"the event id is over {_MAX_EVENT_KEY - len(source) - 1} characters"
            )
        now = self.clock()
        try:
            with self.sessions.begin() as session:
                if session.get(WebhookEvent, key) is not None:
                    return 200, "duplicate event ignored"
                known = session.get(Account, account_id) is not None
                # Committed before the answer: a payment acknowledged is never lost,
                # even when the account's own phase is running or the daemon dies next.
                record_payment(session, key, account_id, source, now, known=known)
        except IntegrityError:
            return 200, "duplicate event ignored"  # the same event, arriving twice at once
        if not known:
            log.warning("payment event for an unknown account", account=account_id, key=key)
            return 202, "unknown account; recorded"
        log.info("payment event", source=source, key=key, account=account_id)
        self.scheduler.wake_now(account_id)
        return 202, "account re-evaluated"

    def health(self) -> tuple[int, dict[str, Any]]:
        """Return (status, body) for /healthz: 503 when syncs stopped succeeding."""
        last = self.scheduler.last_sync
        interval = self.sync_interval
        stale = last is None or self.clock() - last > 3 * interval + interval / 2
        body = {
            "status": "stale" if stale else "ok",
            "last_sync": last.isoformat() if last else None,
            "brake": self.brake.status() is not None,
        }
        return (503 if stale and last is not None else 200), body


def _json(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except ValueError as error:
        raise BadEventError(f"body is not JSON: {error}") from error
    if not isinstance(value, dict):
        raise BadEventError("body is not a JSON object")
    return value


class _Handler(BaseHTTPRequestHandler):
    lapse: LapseHTTP
    server_version = "lapse"
    sys_version = ""
    # Seconds any single read or write may wait (StreamRequestHandler sets it on the socket).
    timeout = READ_TIMEOUT

    def do_GET(self) -> None:
        if self.path == "/healthz":
            status, body = self.lapse.health()
            self._reply(status, json.dumps(body).encode(), "application/json")
        elif self.path == "/metrics":
            self._reply(200, generate_latest(self.lapse.registry), CONTENT_TYPE_LATEST)
        else:
            self._reply(404, b"not found\n", "text/plain")

    def setup(self) -> None:
        super().setup()
        # The socket timeout bounds each read; this bounds the whole connection, so a
        # client trickling a byte at a time cannot hold the thread either.
        self._deadline = threading.Timer(CONNECTION_TIMEOUT, self._cut)
        self._deadline.daemon = True
        self._deadline.start()

    def finish(self) -> None:
        self._deadline.cancel()
        with contextlib.suppress(OSError):  # the connection was cut at its deadline
            super().finish()

    def _cut(self) -> None:
        log.warning("http connection cut at its deadline", peer=self.client_address[0])
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def do_POST(self) -> None:
        try:
            body = read_body(self.headers, self.rfile, _MAX_BODY)
        except BodyError as error:
            self.close_connection = True
            with contextlib.suppress(OSError):  # a client cut at its deadline is gone
                self._reply(error.status, (str(error) + "\n").encode(), "text/plain")
            return
        except OSError as error:  # TimeoutError included: the client stopped sending
            self.close_connection = True
            log.warning(
                "http request body not received", peer=self.client_address[0], error=str(error)
            )
            return
        try:
            if self.path == "/webhooks/stripe":
                status, message = self.lapse.stripe_event(
                    body, self.headers.get("Stripe-Signature")
                )
            elif self.path == "/webhooks/generic":
                status, message = self.lapse.generic_event(
                    body, self.headers.get("X-Lapse-Signature")
                )
            else:
                status, message = 404, "not found"
        except SignatureError as error:
            log.warning(
                "webhook refused", path=self.path, peer=self.client_address[0], reason=str(error)
            )
            status, message = 401, "invalid signature"
        except BadEventError as error:
            status, message = 400, str(error)
        self._reply(status, (message + "\n").encode(), "text/plain")

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http", request=format % args)
