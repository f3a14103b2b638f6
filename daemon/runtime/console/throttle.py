"""Login throttling: failed sign-ins counted per user name and per address in a window."""

from __future__ import annotations

import threading
from collections import deque
from datetime import datetime, timedelta


class LoginThrottle:
    """Refuses sign-in for a user name or an address with `attempts` failures in `window`."""

    def __init__(self, attempts: int, window: timedelta) -> None:
        self.attempts = attempts
        self.window = window
        self._failures: dict[str, deque[datetime]] = {}
        self._lock = threading.Lock()

    def allowed(self, user: str, address: str, now: datetime) -> bool:
        """Whether a sign-in as `user` from `address` may be tried now."""
        with self._lock:
            return all(len(self._recent(key, now)) < self.attempts for key in _keys(user, address))

    def failed(self, user: str, address: str, now: datetime) -> None:
        """Count a failed sign-in against the user name and the address."""
        with self._lock:
            for key in _keys(user, address):
                self._recent(key, now).append(now)

    def succeeded(self, user: str) -> None:
        """Forget the user name's failures (the address keeps its own)."""
        with self._lock:
            self._failures.pop(f"user:{user}", None)

    def _recent(self, key: str, now: datetime) -> deque[datetime]:
        times = self._failures.setdefault(key, deque())
        while times and now - times[0] >= self.window:
            times.popleft()
        return times


def _keys(user: str, address: str) -> tuple[str, str]:
    return f"user:{user.lower()}", f"addr:{address}"
