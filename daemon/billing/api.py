"""Calling a billing system's JSON API: one place for timeouts, errors and redirects.

Errors name the system and the call, never the credentials. Redirects are not
followed, so credentials never travel to another host.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx

from daemon.billing.base import BillingError


def call_json(
    client: httpx.Client, method: str, url: str, what: str, **request: Any
) -> dict[str, Any]:
    """Send one request and return its JSON body (numbers with a fraction as Decimal).

    `what` names the call in errors (e.g. "WHMCS GetInvoices"). Raises BillingError
    on a network error or timeout, a non-2xx answer, or a body that is not a JSON
    object.
    """
    try:
        response = client.request(method, url, follow_redirects=False, **request)
    except httpx.HTTPError as error:
        raise BillingError(f"{what} failed: {error or type(error).__name__}") from None
    try:
        body = json.loads(response.content, parse_float=Decimal) if response.content else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    if not response.is_success:
        detail = _message(body)
        raise BillingError(
            f"{what} answered {response.status_code} {response.reason_phrase}"
            + (f": {detail}" if detail else "")
        )
    if not isinstance(body, dict):
        raise BillingError(f"{what} did not answer with a JSON object")
    return body


def _message(body: object) -> str:
    """The error text an API put in its body (WHMCS: message; Stripe: error.message)."""
    if not isinstance(body, dict):
        return ""
    error = body.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    message = body.get("message")
    return message if isinstance(message, str) else ""
