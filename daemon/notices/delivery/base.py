"""The delivery interface and the two ways a delivery can fail."""

from __future__ import annotations

from abc import ABC, abstractmethod
from email.message import EmailMessage

from daemon.notices.errors import NoticeError


class DeliveryError(NoticeError):
    """A notice was not delivered."""


class TemporaryDeliveryError(DeliveryError):
    """Delivery failed for now; the same message may succeed later (4xx, timeouts, refused)."""


class PermanentDeliveryError(DeliveryError):
    """Delivery failed and retrying the same message will not help (5xx, bad address)."""


class Delivery(ABC):
    """Hands a composed notice to its next hop."""

    name: str

    @abstractmethod
    def deliver(self, message: EmailMessage) -> str:
        """Deliver `message` and return a receipt (the server's reply or the file written).

        Raises TemporaryDeliveryError when a later retry may succeed and
        PermanentDeliveryError when it will not.
        """
