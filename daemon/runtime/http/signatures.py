"""Checking that a payment event really comes from the billing system.

Stripe signs `"{timestamp}.{body}"` with HMAC-SHA256 and sends
`Stripe-Signature: t=<timestamp>,v1=<hex>[,v1=<hex>...]`; other billing systems
sign the raw body and send `X-Lapse-Signature: sha256=<hex>`. Comparisons are
constant-time, and old timestamps are refused so a captured event cannot be
replayed later (replays within the tolerance are caught by the event id).
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta

from daemon.domain.errors import LapseError


class SignatureError(LapseError):
    """The event's signature or timestamp does not check out; says which."""


def _hmac(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify_stripe(
    header: str | None, body: bytes, secret: str, now: datetime, tolerance: timedelta
) -> None:
    """Check a Stripe-Signature header for `body`. Raises SignatureError."""
    if not header:
        raise SignatureError("no Stripe-Signature header")
    if not header.isascii():
        # hmac.compare_digest refuses non-ASCII text with a TypeError, not a mismatch.
        raise SignatureError("Stripe-Signature header is not ASCII")
    parts = [item.split("=", 1) for item in header.split(",") if "=" in item]
    timestamps = [value for key, value in parts if key.strip() == "t"]
    signatures = [value.strip() for key, value in parts if key.strip() == "v1"]
    if len(timestamps) != 1 or not timestamps[0].strip().isdigit() or not signatures:
        raise SignatureError("malformed Stripe-Signature header")
    timestamp = int(timestamps[0])
    expected = _hmac(secret, f"{timestamp}.".encode() + body)
    if not any(hmac.compare_digest(expected, candidate) for candidate in signatures):
        raise SignatureError("Stripe signature does not match")
    if abs(now.timestamp() - timestamp) > tolerance.total_seconds():
        raise SignatureError(f"Stripe timestamp {timestamp} is outside the tolerance")


def verify_hmac(header: str | None, body: bytes, secret: str) -> None:
    """Check an X-Lapse-Signature header (sha256=<hex> of `body`). Raises SignatureError."""
    if not header or not header.startswith("sha256="):
        raise SignatureError("no X-Lapse-Signature: sha256=... header")
    if not header.isascii():
        # hmac.compare_digest refuses non-ASCII text with a TypeError, not a mismatch.
        raise SignatureError("X-Lapse-Signature header is not ASCII")
    if not hmac.compare_digest(_hmac(secret, body), header.removeprefix("sha256=").strip()):
        raise SignatureError("signature does not match")


def sign_stripe(body: bytes, secret: str, timestamp: int) -> str:
    """Return the Stripe-Signature header value for `body` (for tests and tools)."""
    return f"t={timestamp},v1={_hmac(secret, f'{timestamp}.'.encode() + body)}"


def sign_hmac(body: bytes, secret: str) -> str:
    """Return the X-Lapse-Signature header value for `body`."""
    return "sha256=" + _hmac(secret, body)
