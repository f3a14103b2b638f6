"""The client notices the lifecycle sends."""

from __future__ import annotations

from enum import StrEnum


class NoticeKind(StrEnum):
    """The client notices the lifecycle sends."""

    REMINDER = "reminder"
    FINAL = "final"
    SUSPENSION = "suspension"
    REMOVAL_WARNING = "removal-warning"
    DELETION = "deletion"
    REACTIVATION = "reactivation"
    PAYMENT_PLAN = "payment-plan"
