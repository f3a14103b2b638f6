"""The cyclic garbage collector's policy for the `lapse` process: what starting built
is frozen.

Starting Lapse (its modules and their libraries, the config, the ORM's mappers, the
services) makes a few hundred thousand objects that live as long as the process and
make no garbage. The collector's passes over them while they are made find nothing
(about a sixth of the CPU `lapse restore` spent before its first request), and every
full pass afterwards walks them again (about a tenth of a first sync's CPU). So the
console entry holds the collector off from its first line (`hold`), and once the
command built what it runs with (`settle`: the app, a restore's parts or the read
models) everything alive moves to the permanent generation (gc.freeze) and the
collector is on again: its passes see only what the work makes. A command that
builds none of them (check-config, migrate) runs with the collector off to its end,
its garbage freed by reference counting.

A billing sync runs `spaced`: its young pass every SYNC_YOUNG_THRESHOLD net
allocations of containers instead of every 700 (the older passes follow it, as
ever). A sync at a million accounts streams millions of short-lived rows and
listings past containers that live through it (the remembered blocks, the sets of
account hashes that grow to a million entries); at 700 the collector made 3,500
young, 320 middle and 26 full passes over them in one daily sync (5.5 s of 23.6)
and 42.7 s of the first, and found next to nothing. Cycles are still collected
during a sync, only in fewer passes; between syncs the daemon's thresholds are
CPython's own again, so what little it leaves in cycles is freed as promptly as
ever.

Frozen objects are still freed when nothing refers to them; only a cycle among them
outlives its last reference. A config reload, which replaces the app, calls
`refreeze` so the old app's cycles are collected once. A process that never called
`hold` (the tests, a bench building the app itself) is left as it is.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# The young generation's threshold while a sync runs (see the module docstring).
SYNC_YOUNG_THRESHOLD = 100_000


class _Policy:
    """Where this process stands: held off by `hold`, then frozen by `settle`."""

    held = False
    frozen = False


_policy = _Policy()


class _Spacing:
    """The `spaced` blocks running in this process, and the thresholds they replaced."""

    lock = threading.Lock()
    depth = 0
    saved: tuple[int, int, int] | None = None


_spacing = _Spacing()


@contextmanager
def spaced(threshold: int = SYNC_YOUNG_THRESHOLD) -> Iterator[None]:
    """Within the block, the collector's young pass runs every `threshold` allocations
    (or at the threshold in force, if that is higher); when the last spaced block of
    the process ends, the thresholds in force before the first are back. Blocks may
    nest and overlap from several threads."""
    with _spacing.lock:
        if _spacing.depth == 0:
            young, middle, old = _spacing.saved = gc.get_threshold()
            gc.set_threshold(max(young, threshold), middle, old)
        _spacing.depth += 1
    try:
        yield
    finally:
        with _spacing.lock:
            _spacing.depth -= 1
            if _spacing.depth == 0 and _spacing.saved is not None:
                gc.set_threshold(*_spacing.saved)
                _spacing.saved = None


def hold() -> None:
    """Turn the collector off until `settle` (the console entry, before its imports)."""
    if gc.isenabled():
        gc.disable()
        _policy.held = True


def settle() -> None:
    """After `hold`: freeze every object alive and turn the collector on again.
    Without a `hold` before it (or after a first `settle`), nothing."""
    if not _policy.held:
        return
    _policy.held = False
    gc.freeze()
    _policy.frozen = True
    gc.enable()


def refreeze() -> None:
    """After what `settle` froze was replaced (a reload): collect the cycles left behind,
    then freeze what is alive again. Without a `settle` before it, nothing."""
    if not _policy.frozen:
        return
    gc.unfreeze()
    gc.collect()
    gc.freeze()
