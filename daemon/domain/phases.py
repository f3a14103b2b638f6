"""The playbook phases."""

from __future__ import annotations

from enum import StrEnum


class Phase(StrEnum):
    """Playbook phases the lifecycle asks for."""

    SUSPEND = "suspend"
    UNSUSPEND = "unsuspend"
    DELETE = "delete"
