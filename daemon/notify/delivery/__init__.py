"""Delivering composed notices: to an outbox directory or through SMTP."""

from daemon.notify.delivery.base import (
    Delivery,
    DeliveryError,
    PermanentDeliveryError,
    TemporaryDeliveryError,
)
from daemon.notify.delivery.dispatch import create_delivery
from daemon.notify.delivery.outbox import OutboxDelivery
from daemon.notify.delivery.smtp import SmtpDelivery

__all__ = [
    "Delivery",
    "DeliveryError",
    "OutboxDelivery",
    "PermanentDeliveryError",
    "SmtpDelivery",
    "TemporaryDeliveryError",
    "create_delivery",
]
