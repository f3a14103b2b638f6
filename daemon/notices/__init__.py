"""Client notices and ops alerts: rendering them from templates and delivering them.

The lifecycle builds a `NoticeRequest` and the notice desk (`desk`) writes it to
the state database, turns it into an email with `compose()` and hands that to the
`Delivery` made by `create_delivery()`. `alerts` sends ops alerts the same way.
"""

from daemon.notices.compose import compose
from daemon.notices.delivery import (
    Delivery,
    DeliveryError,
    PermanentDeliveryError,
    TemporaryDeliveryError,
    create_delivery,
)
from daemon.notices.errors import AddressError, NoticeError, RenderError
from daemon.notices.request import NoticeRequest
from daemon.notices.templates import create_environment

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
