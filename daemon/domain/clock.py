"""The injectable clock: real time in the daemon, virtual time in simulations and tests."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """Return the current time, timezone-aware UTC."""
    return datetime.now(UTC)


class VirtualClock:
    """A clock that moves only when told to, so a 60-day lifecycle runs in seconds."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("a virtual clock needs a timezone-aware start")
        self.now = start.astimezone(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta) -> datetime:
        """Move forward by `by`; returns the new time."""
        self.now += by
        return self.now

    def set(self, moment: datetime) -> datetime:
        """Move to `moment` (never backwards); returns the new time."""
        if moment < self.now:
            raise ValueError(f"a virtual clock does not go back ({moment} < {self.now})")
        self.now = moment
        return self.now
