"""The delivery interface and the two ways a delivery can fail."""

from __future__ import annotations

import email
import email.policy
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
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
    # How many notices the desk hands over in one `together()` block, and marks delivered
    # in one transaction. One where each delivery is final on its own: a crash in the
    # middle of a batch would deliver the batch's first notices again.
    batch_size: int = 1

    @abstractmethod
    def deliver(self, message: EmailMessage) -> str:
        """Deliver `message` and return a receipt (the server's reply or the file written).

        Raises TemporaryDeliveryError when a later retry may succeed and
        PermanentDeliveryError when it will not.
        """

    def deliver_stored(self, raw: bytes, message_id: str) -> str:
        """Deliver the notice stored as `raw` (its bytes as composed), whose Message-ID
        header is `message_id`; return a receipt as `deliver` does, raising what it raises.

        By default the message is read back whole and delivered; a delivery that hands
        on bytes as they are says so by overriding this.
        """
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        return self.deliver(message)

    @contextmanager
    def together(self) -> Iterator[None]:
        """Make the deliveries this thread makes inside the block durable together, when
        it ends (each is durable on its own unless a delivery says otherwise).

        Raises TemporaryDeliveryError at the end when they cannot be made durable: then
        none of them counts as delivered.
        """
        yield
