"""What `/healthz` answers: whether billing syncs succeed, and why not.

A load balancer or a monitor reads the status code; a person reads the JSON body. The
daemon is healthy once a billing sync has succeeded and while the last success is
recent: before the first one it knows nothing of billing, and a daemon whose syncs
keep failing acts on stale data. The safety brake is reported but is not ill health:
the daemon is doing what it should, and `lapse_safety_brake_engaged` alerts on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

# A sync may fail a few times (billing down for a deploy) before the daemon is called
# stale: three missed intervals and a half.
STALE_AFTER_INTERVALS = 3.5


@dataclass(frozen=True)
class SyncHealth:
    """The daemon's billing syncs as /healthz sees them."""

    last_sync: datetime | None
    sync_failures: int
    sync_interval: timedelta
    brake_engaged: bool


def health(state: SyncHealth, now: datetime) -> tuple[int, dict[str, Any]]:
    """Return (HTTP status, JSON body) for /healthz.

    200 with `"status": "ok"` while the last successful sync is within
    STALE_AFTER_INTERVALS sync intervals; 503 with `"status": "starting"` before the
    first successful sync, and with `"status": "stale"` after; `reason` says why in
    words.
    """
    limit = state.sync_interval * STALE_AFTER_INTERVALS
    body: dict[str, Any] = {
        "last_sync": state.last_sync.isoformat() if state.last_sync else None,
        "sync_failures": state.sync_failures,
        "stale_after_seconds": limit.total_seconds(),
        "brake": state.brake_engaged,
    }
    if state.last_sync is None:
        failed = f" ({state.sync_failures} failed so far)" if state.sync_failures else ""
        reason = f"no billing sync has succeeded yet{failed}"
        return 503, {"status": "starting", "reason": reason, **body}
    age = now - state.last_sync
    if age > limit:
        reason = (
            f"the last successful billing sync was {_seconds(age)} ago, "
            f"over the limit of {_seconds(limit)}"
        )
        return 503, {"status": "stale", "reason": reason, **body}
    return 200, {"status": "ok", "reason": "billing syncs succeed", **body}


def _seconds(span: timedelta) -> str:
    return f"{span.total_seconds():.0f} s"
