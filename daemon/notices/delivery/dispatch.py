"""Choosing the delivery the notifier configuration names."""

from __future__ import annotations

from daemon.config.schema import OutboxNotifier, SmtpNotifier
from daemon.notices.delivery.base import Delivery
from daemon.notices.delivery.outbox import OutboxDelivery
from daemon.notices.delivery.smtp import SmtpDelivery


def create_delivery(config: OutboxNotifier | SmtpNotifier) -> Delivery:
    """Return the delivery for `config`: an outbox directory or an SMTP server.

    Opens no connection and touches no file; that happens on the first delivery.
    """
    match config:
        case OutboxNotifier():
            return OutboxDelivery(config.path)
        case SmtpNotifier():
            return SmtpDelivery(config)
