"""Choosing the billing source the config names."""

from __future__ import annotations

from daemon.billing.base import BillingSource
from daemon.billing.file import FileSource
from daemon.billing.http import HttpSource
from daemon.billing.sql import SqlSource
from daemon.billing.stripe import StripeSource
from daemon.billing.whmcs import WhmcsSource
from daemon.config.schema import (
    BillingConfig,
    FileBilling,
    HttpBilling,
    SqlBilling,
    StripeBilling,
    WhmcsBilling,
)


def create_source(config: BillingConfig) -> BillingSource:
    """Return the billing source for `config`; nothing is read until the first fetch.

    Raises SecretError when a configured secret cannot be read.
    """
    match config:
        case FileBilling():
            return FileSource(config)
        case SqlBilling():
            return SqlSource(config)
        case HttpBilling():
            return HttpSource(config)
        case WhmcsBilling():
            return WhmcsSource(config)
        case StripeBilling():
            return StripeSource(config)
