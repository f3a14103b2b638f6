"""Delivering composed notices: to an outbox directory or through SMTP."""

from daemon.notices.delivery.base import (
    Delivery,
    DeliveryError,
    PermanentDeliveryError,
    TemporaryDeliveryError,
)
from daemon.notices.delivery.dispatch import create_delivery
from daemon.notices.delivery.outbox import OutboxDelivery
from daemon.notices.delivery.smtp import SmtpDelivery

__all__ = [
    "Delivery",
    "DeliveryError",
    "OutboxDelivery",
    "PermanentDeliveryError",
    "SmtpDelivery",
    "TemporaryDeliveryError",
    "create_delivery",
]
