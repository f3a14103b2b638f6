"""Choosing the billing source the config names."""

from __future__ import annotations

from daemon.billing.base import BillingSource
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
    # Only the configured source's module is imported: a file or SQL source never
    # loads the HTTP client (3 MB of a `lapse backup` that must stay small).
    match config:
        case FileBilling():
            from daemon.billing.file import FileSource

            return FileSource(config)
        case SqlBilling():
            from daemon.billing.sql import SqlSource

            return SqlSource(config)
        case HttpBilling():
            from daemon.billing.http import HttpSource

            return HttpSource(config)
        case WhmcsBilling():
            from daemon.billing.whmcs import WhmcsSource

            return WhmcsSource(config)
        case StripeBilling():
            from daemon.billing.stripe import StripeSource

            return StripeSource(config)
