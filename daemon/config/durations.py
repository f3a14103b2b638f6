"""Durations written the way operators write them: "14d", "36h", "90m", "1d12h"."""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"(\d+)\s*([wdhms])")
_WHOLE = re.compile(r"^\s*(?:\d+\s*[wdhms]\s*)+$")
_UNIT_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(text: object) -> timedelta:
    """Parse a duration such as "7d", "36h" or "1d12h".

    Takes a string (a `timedelta` passes through unchanged).
    Returns the `timedelta`.
    Raises ValueError naming what was expected and what was given.
    """
    if isinstance(text, timedelta):
        return text
    if not isinstance(text, str) or not _WHOLE.match(text):
        raise ValueError(f'expected a duration like "7d", "36h" or "90m", got {text!r}')
    seconds = sum(int(n) * _UNIT_SECONDS[unit] for n, unit in _PART.findall(text))
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """Return the shortest operator-style spelling of `value`, e.g. "1d12h"."""
    seconds = int(value.total_seconds())
    if seconds == 0:
        return "0s"
    parts = []
    for unit in ("d", "h", "m", "s"):
        count, seconds = divmod(seconds, _UNIT_SECONDS[unit])
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
