"""Ops alerts: failures and halts reported by e-mail and/or a JSON webhook, always logged.

An alert must never make things worse: a failing alert channel is logged and
swallowed, so the lifecycle step that raised the alert is still recorded.
"""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

import structlog

from daemon.config.schema import AlertsConfig
from daemon.notices.compose import sender_domain
from daemon.notices.delivery.base import Delivery, DeliveryError

log = structlog.get_logger("lapse.alerts")


class OpsAlerts:
    """Sends alerts to the channels the `[alerts]` config names."""

    def __init__(self, config: AlertsConfig, delivery: Delivery, sender: str) -> None:
        self.config = config
        self.delivery = delivery
        self.sender = sender

    def alert(self, kind: str, account: str | None, detail: str, at: datetime) -> None:
        """Report `kind` (e.g. 'notice-refused') about `account` with a one-line `detail`.

        Logs at error level, then e-mails each ops address and POSTs
        `{"alert", "account", "detail", "at"}` to the webhook. Never raises.
        """
        log.error("ops alert", alert=kind, account=account, detail=detail)
        payload = {"alert": kind, "account": account, "detail": detail, "at": at.isoformat()}
        if self.config.email:
            self._email(payload, at)
        if self.config.webhook:
            self._post(payload)

    def _email(self, payload: dict[str, Any], at: datetime) -> None:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = ", ".join(self.config.email)
        subject = f"[lapse] {payload['alert']}"
        message["Subject"] = f"{subject}: {payload['account']}" if payload["account"] else subject
        message["Date"] = format_datetime(at)
        message["Message-ID"] = make_msgid(domain=sender_domain(self.sender))
        message.set_content(
            "\n".join(f"{key}: {value}" for key, value in payload.items() if value) + "\n"
        )
        try:
            self.delivery.deliver(message)
        except DeliveryError as error:
            log.error("ops alert e-mail failed", alert=payload["alert"], error=str(error))

    def _post(self, payload: dict[str, Any]) -> None:
        # Imported here: most processes never send a webhook alert, and the HTTP
        # client is 3 MB of a `lapse backup` that must stay small.
        import httpx

        assert self.config.webhook is not None
        try:
            response = httpx.post(
                self.config.webhook, json=payload, timeout=self.config.timeout.total_seconds()
            )
            response.raise_for_status()
        except httpx.HTTPError as error:
            log.error("ops alert webhook failed", alert=payload["alert"], error=str(error))
