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

Frozen objects are still freed when nothing refers to them; only a cycle among them
outlives its last reference. A config reload, which replaces the app, calls
`refreeze` so the old app's cycles are collected once. A process that never called
`hold` (the tests, a bench building the app itself) is left as it is.
"""

from __future__ import annotations

import gc


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
