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

Once settled, the collector's young pass runs every YOUNG_THRESHOLD net allocations
of containers instead of every 700 (the older passes follow it, as ever). A sync at
a million accounts streams millions of short-lived rows and listings past a few
hundred thousand containers that live through it (the remembered blocks, the sets
of account hashes that grow to a million entries); at 700 the collector made 3,500
young, 320 middle and 26 full passes over them in one daily sync, some 15% of its
CPU, and found next to nothing. Cycles are still collected, only in fewer passes.

Frozen objects are still freed when nothing refers to them; only a cycle among them
outlives its last reference. A config reload, which replaces the app, calls
`refreeze` so the old app's cycles are collected once. A process that never called
`hold` (the tests, a bench building the app itself) is left as it is.
"""

from __future__ import annotations

import gc

# The young generation's threshold once settled (see the module docstring).
YOUNG_THRESHOLD = 100_000


class _Policy:
    """Where this process stands: held off by `hold`, then frozen by `settle`."""

    held = False
    frozen = False


_policy = _Policy()


def hold() -> None:
    """Turn the collector off until `settle` (the console entry, before its imports)."""
    if gc.isenabled():
        gc.disable()
        _policy.held = True


def settle() -> None:
    """After `hold`: freeze every object alive and turn the collector on again, its young
    pass every YOUNG_THRESHOLD allocations. Without a `hold` before it (or after a first
    `settle`), nothing."""
    if not _policy.held:
        return
    _policy.held = False
    gc.freeze()
    _policy.frozen = True
    _young, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
    gc.enable()


def refreeze() -> None:
    """After what `settle` froze was replaced (a reload): collect the cycles left behind,
    then freeze what is alive again. Without a `settle` before it, nothing."""
    if not _policy.frozen:
        return
    gc.unfreeze()
    gc.collect()
    gc.freeze()
