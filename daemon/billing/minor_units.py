"""Amounts finer than their currency's smallest unit are refused (10.005 EUR, 1.5 JPY).

No client can be asked for a tenth of a cent, and a notice would round such an amount
so that its items and total stop adding up; the row is refused with the field named.
"""

from __future__ import annotations

from decimal import Decimal

from babel.numbers import get_currency_precision

from daemon.billing.fields import FieldError
from daemon.domain.snapshot import AccountSnapshot


def whole_minor_units(amount: Decimal, currency: str, field: str) -> Decimal:
    """Return `amount` when it is a whole number of `currency`'s minor units (0.01 for
    EUR, 1 for JPY). Raises FieldError naming `field` otherwise."""
    places = get_currency_precision(currency.upper())
    exponent = amount.normalize().as_tuple().exponent
    if isinstance(exponent, int) and exponent < -places:
        unit = Decimal(1).scaleb(-places)
        raise FieldError(
            field, f"{amount} {currency} is finer than the currency's smallest unit ({unit})"
        )
    return amount


def check_snapshot(snapshot: AccountSnapshot) -> AccountSnapshot:
    """Return `snapshot` when every amount in it is in whole minor units of its currency.

    Raises FieldError naming the first amount that is not, by its nested field path
    (e.g. 'invoices[0].items[1].amount').
    """
    currency = snapshot.currency
    whole_minor_units(snapshot.balance, currency, "balance")
    for i, invoice in enumerate(snapshot.invoices):
        whole_minor_units(invoice.total, currency, f"invoices[{i}].total")
        whole_minor_units(invoice.amount_due, currency, f"invoices[{i}].amount_due")
        for j, item in enumerate(invoice.items):
            whole_minor_units(item.amount, currency, f"invoices[{i}].items[{j}].amount")
    for c, credit in enumerate(snapshot.credits):
        whole_minor_units(credit.amount, currency, f"credits[{c}].amount")
    for k, instalment in enumerate(snapshot.instalments):
        whole_minor_units(instalment.amount, currency, f"instalments[{k}].amount")
    return snapshot
