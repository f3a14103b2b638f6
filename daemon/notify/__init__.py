"""Client notices: rendering them from templates and delivering them.

The engine builds a `NoticeRequest`, turns it into an email with `compose()`
and hands that to the `Delivery` made by `create_delivery()`.
"""

from daemon.notify.compose import compose
from daemon.notify.delivery import (
    Delivery,
    DeliveryError,
    PermanentDeliveryError,
    TemporaryDeliveryError,
    create_delivery,
)
from daemon.notify.errors import AddressError, NoticeError, RenderError
from daemon.notify.request import NoticeRequest
from daemon.notify.templates import create_environment

__all__ = [
    "AddressError",
    "Delivery",
    "DeliveryError",
    "NoticeError",
    "NoticeRequest",
    "PermanentDeliveryError",
    "RenderError",
    "TemporaryDeliveryError",
    "compose",
    "create_delivery",
    "create_environment",
]
