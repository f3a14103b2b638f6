"""Which due phase a free worker takes next: the rules, apart from the database.

`pick_next` is the one place that chooses. It is given the due actions in queue order
(priority, then the oldest) and what runs now (per account and per host, counted over
every daemon sharing the state database), and returns the first action that may start:

- never two phases of one account at once;
- never more phases on a host than its `max_parallel` (a phase counts against every host
  it works on: a site on one, its database on another), but for one slot more kept for
  a paying client's unsuspend (UNSUSPEND_HEADROOM): a reactivation is light (a
  maintenance page taken down, logins given back) and must not wait for a suspension's
  backup to end on its host;
- while the safety brake holds, no suspend and no delete;
- when only the reserved worker is free, only an unsuspend (a paying client).

A hook that must approve a phase before it starts (an operator's gate) goes here too,
as `allow`: an action it refuses stays queued and the next one is considered.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from daemon.domain.phases import Phase

# Slots per host beyond `max_parallel` that only an unsuspend may take (issue: a
# payment acted on at once even when every slot is busy with suspensions).
UNSUSPEND_HEADROOM = 1

# The phases the safety brake holds (invariant 7).
BRAKED_PHASES = frozenset({Phase.SUSPEND.value, Phase.DELETE.value})


@dataclass(frozen=True)
class QueuedAction:
    """A due action as the picker sees it."""

    action_id: int
    account_id: str
    phase: str
    hosts: tuple[str, ...]  # every host it works on; none for an account without services
    priority: int
    created_at: datetime


@dataclass
class Running:
    """What runs now: the accounts with a phase under way and the phases per host."""

    accounts: set[str] = field(default_factory=set)
    per_host: Counter[str] = field(default_factory=Counter)


def queue_order(action: QueuedAction) -> tuple[int, datetime, int]:
    """The sort key of the queue: priority, then the oldest, then the first queued."""
    return (action.priority, action.created_at, action.action_id)


def pick_next(
    queued: Sequence[QueuedAction],
    running: Running,
    host_limit: Callable[[str], int],
    *,
    braked: bool = False,
    only: Collection[str] | None = None,
    allow: Callable[[QueuedAction], bool] | None = None,
) -> QueuedAction | None:
    """Return the first of `queued` (taken in queue order) that may start now, or None.

    `host_limit` gives a host's `max_parallel`; an action waits while any of its hosts is
    full, and one with no host counts against none. `braked` holds suspend and delete;
    `only` restricts the phases (the reserved worker takes only unsuspend); `allow` may
    refuse an action, which then waits.
    """
    for action in sorted(queued, key=queue_order):
        if action.account_id in running.accounts:
            continue
        if braked and action.phase in BRAKED_PHASES:
            continue
        if only is not None and action.phase not in only:
            continue
        if any(running.per_host[host] >= _limit(action, host, host_limit) for host in action.hosts):
            continue
        if allow is not None and not allow(action):
            continue
        return action
    return None


def _limit(action: QueuedAction, host: str, host_limit: Callable[[str], int]) -> int:
    """How many phases may run on `host` when the action starts: its `max_parallel`, and
    for an unsuspend the headroom kept for it."""
    extra = UNSUSPEND_HEADROOM if action.phase == Phase.UNSUSPEND.value else 0
    return host_limit(host) + extra


def host_limits(limits: Mapping[str, int], default: int) -> Callable[[str], int]:
    """Return a host's limit from `limits`, `default` for a host not named there (one
    taken out of the config while its phases still wait)."""
    return lambda host: limits.get(host, default)
