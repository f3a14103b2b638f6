"""The HTTP listener: POST /webhooks/stripe, POST /webhooks/generic, GET /healthz, /metrics.

A valid payment event is recorded (its id makes a replay a no-op) and the account
is evaluated at once: billing is read afresh, and if it is paid, reactivation and
the unsuspend phase follow within seconds. An invalid signature gets 401 and a
log line; nothing else is said to the caller.

The routes are a Starlette app served by uvicorn (daemon.runtime.http.serving, which
also bounds slow and half-sent requests); what each route does is a method of
`LapseHTTP`, called from a worker thread.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any, Protocol

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import IntegrityError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from daemon.billing import fields
from daemon.config.schema import WebhooksConfig
from daemon.domain.errors import LapseError
from daemon.lifecycle.engine import LifecycleEngine
from daemon.runtime.http.health import SyncHealth, health
from daemon.runtime.http.metrics import LapseCollector, make_registry
from daemon.runtime.http.requests import BodyError, read_body
from daemon.runtime.http.serving import Limits, ListenerThread
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
# or a connection open longer than CONNECTION_TIMEOUT, is a client holding a connection.
# Read for every connection (daemon.runtime.http.serving), so tests may shorten them.
READ_TIMEOUT = 5.0
CONNECTION_TIMEOUT = 15.0
# Connections served at once; webhooks come one at a time, scrapes every few seconds.
# One over the limit is answered 503 at once.
MAX_CONNECTIONS = 32
# The state database keeps an event's key ("<source>:<id>") in 200 characters.
_MAX_EVENT_KEY = 200


def _limits() -> Limits:
    return Limits(READ_TIMEOUT, CONNECTION_TIMEOUT, MAX_CONNECTIONS)


class BadEventError(LapseError):
    """The event is signed but not understood (400)."""


class Scheduling(Protocol):
    """What the listener asks of the daemon's scheduling: act on a recorded payment now,
    and when billing was last synced (None before the first sync, or on a follower)."""

    @property
    def last_sync(self) -> datetime | None:
        """When billing was last synced here."""

    @property
    def sync_failures(self) -> int:
        """How many billing syncs failed here since the daemon started."""

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
        self.sessions = lifecycle.sessions
        self.clock = lifecycle.clock
        self.brake = lifecycle.brake
        self.scheduler = scheduler
        self.webhooks = webhooks
        self.sync_interval = sync_interval
        self.registry = make_registry(
            LapseCollector(
                lifecycle.sessions,
                lambda: scheduler.last_sync,
                sync_failures=lambda: scheduler.sync_failures,
                clock=lifecycle.clock,
            )
        )
        self.server = ListenerThread(_routes(self), listen, _limits, name="http")

    @property
    def port(self) -> int:
        """The port actually bound (useful with port 0)."""
        return self.server.port

    def start(self) -> None:
        """Serve in a background thread."""
        self.server.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.server.stop()

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
        """Return (status, body) for /healthz (daemon.runtime.http.health)."""
        state = SyncHealth(
            self.scheduler.last_sync,
            self.scheduler.sync_failures,
            self.sync_interval,
            self.brake.status() is not None,
        )
        return health(state, self.clock())


def _json(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except ValueError as error:
        raise BadEventError(f"body is not JSON: {error}") from error
    if not isinstance(value, dict):
        raise BadEventError("body is not a JSON object")
    return value


def _routes(lapse: LapseHTTP) -> Starlette:
    """The listener's routes, each calling the `lapse` method that does its work."""

    async def health(_request: Request) -> Response:
        status, body = await run_in_threadpool(lapse.health)
        return JSONResponse(body, status)

    async def metrics(_request: Request) -> Response:
        text = await run_in_threadpool(generate_latest, lapse.registry)
        return Response(text, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def stripe(request: Request) -> Response:
        return await _webhook(request, lapse.stripe_event, "Stripe-Signature")

    async def generic(request: Request) -> Response:
        return await _webhook(request, lapse.generic_event, "X-Lapse-Signature")

    return Starlette(
        routes=[
            Route("/healthz", health, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/webhooks/stripe", stripe, methods=["POST"]),
            Route("/webhooks/generic", generic, methods=["POST"]),
        ]
    )


async def _webhook(request: Request, act: Any, signature_header: str) -> Response:
    """Read the body within its declared length and hand it to `act`; the answer is the
    status and message `act` returns, 401 for a bad signature, 400 for a bad event."""
    try:
        body = await read_body(request, _MAX_BODY)
    except BodyError as error:
        # The rest of a refused body is never read: the connection ends with the answer.
        return PlainTextResponse(str(error) + "\n", error.status, {"Connection": "close"})
    except ClientDisconnect:
        peer = request.client.host if request.client else None
        log.warning("http request body not received", peer=peer)
        return Response(status_code=400, headers={"Connection": "close"})
    try:
        status, message = await run_in_threadpool(act, body, request.headers.get(signature_header))
    except SignatureError as error:
        peer = request.client.host if request.client else None
        log.warning("webhook refused", path=request.url.path, peer=peer, reason=str(error))
        status, message = 401, "invalid signature"
    except BadEventError as error:
        status, message = 400, str(error)
    return PlainTextResponse(message + "\n", status)
