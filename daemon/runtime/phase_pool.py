"""The daemon's workers for playbook phases: side by side, within limits, under leases.

A dispatcher thread claims due phases from the state database (ActionQueue.claim_next,
which applies daemon.playbooks.picking.pick_next: one phase per account, each host's
`max_parallel` counted across daemons, unsuspend first, then the oldest) while a
worker is free, and runs each in a thread of its own. `workers` threads take any
phase; one more is kept for unsuspend alone, so a paying client's phase starts even
when every worker is busy with a storm of suspensions. A lease thread renews the
lease on every phase this process runs; if this process dies, the leases run out
and another daemon resumes the phases from the step they reached.

Syncs, wake-ups and payments never run here: they have threads of their own
(daemon.runtime.scheduler), so none waits behind a phase. The dispatcher looks
for work when kicked (a job queued a phase, a phase ended) and every POLL seconds
(a phase queued by another daemon or a command, a lease run out elsewhere).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta

import structlog

from daemon.config.schema import HostConfig
from daemon.domain.phases import Phase
from daemon.playbooks.action_queue import ClaimedAction
from daemon.playbooks.claims import this_process
from daemon.playbooks.picking import host_limits
from daemon.playbooks.runner import PlaybookRunner

log = structlog.get_logger("lapse.pool")

# How often an idle dispatcher looks at the queue without being kicked.
POLL = 0.5
# The phases the reserved worker takes: a paying client's.
RESERVED_FOR = frozenset({Phase.UNSUSPEND.value})
# A host missing from the config (its phases still queued) gets the schema's default.
_DEFAULT_MAX_PARALLEL = HostConfig.model_fields["max_parallel"].default


@dataclass(frozen=True)
class PoolFigures:
    """What the pool runs now (for /metrics and status lines)."""

    workers: int
    running: int
    reserved_busy: bool


class PhasePool:
    """Runs claimed playbook phases side by side in worker threads."""

    def __init__(
        self,
        runner: PlaybookRunner,
        hosts: Mapping[str, HostConfig],
        *,
        workers: int = 8,
        lease: timedelta = timedelta(seconds=30),
        owner: str | None = None,
        after_phase: Callable[[], None] | None = None,
    ) -> None:
        """Take the runner, the hosts (their `max_parallel`), the number of workers, the
        lease, the claim name of this daemon (this process by default) and what to call
        after each phase ends (the scheduler's look for payments)."""
        self.runner = runner
        self.queue = runner.queue
        self.workers = workers
        self.lease = lease
        self.owner = owner or this_process()
        self.after_phase = after_phase
        self.host_limit = host_limits(
            {name: host.max_parallel for name, host in hosts.items()}, _DEFAULT_MAX_PARALLEL
        )
        self._lock = threading.Lock()
        self._general: dict[int, threading.Thread] = {}
        self._reserved: dict[int, threading.Thread] = {}
        self._kick = threading.Event()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start the dispatcher and the lease renewal."""
        for target, name in ((self._dispatch, "lapse-dispatch"), (self._renew, "lapse-lease")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def kick(self) -> None:
        """Look for due phases now (one was queued, or a worker came free)."""
        self._kick.set()

    def figures(self) -> PoolFigures:
        """How many phases run in this process now."""
        with self._lock:
            return PoolFigures(
                self.workers, len(self._general) + len(self._reserved), bool(self._reserved)
            )

    def running_ids(self) -> set[int]:
        """The ids of the actions this process runs now."""
        with self._lock:
            return set(self._general) | set(self._reserved)

    def stop(self, timeout: float) -> set[int]:
        """Take no more phases, ask the running ones to stop at their next step boundary,
        wait up to `timeout` seconds for them, and return the ids of those still running
        (their steps are recorded; they resume at the next start, or in another daemon
        once the lease runs out)."""
        self._stopping.set()
        self.runner.stop_requested.set()
        self._kick.set()
        for thread in self._threads:
            thread.join()
        deadline = time.monotonic() + timeout
        for thread in list(self._general.values()) + list(self._reserved.values()):
            thread.join(max(0.0, deadline - time.monotonic()))
        left = self.running_ids()
        if left:
            log.warning(
                "phases still running at stop; each resumes from the step it reached",
                actions=sorted(left),
                timeout_s=timeout,
            )
        return left

    def _dispatch(self) -> None:
        while not self._stopping.is_set():
            self._kick.wait(POLL)
            self._kick.clear()
            try:
                self._fill()
            except Exception:  # a lost database connection must not end the dispatcher
                log.exception("could not claim phases; trying again")
                self._stopping.wait(POLL)

    def _fill(self) -> None:
        """Claim phases while a worker is free and one may start."""
        while not self._stopping.is_set():
            with self._lock:
                general_free = len(self._general) < self.workers
                reserved_free = not self._reserved
            if general_free:
                claimed = self.queue.claim_next(self.owner, self.lease, self.host_limit)
                slots = self._general
            elif reserved_free:
                claimed = self.queue.claim_next(
                    self.owner, self.lease, self.host_limit, only=RESERVED_FOR
                )
                slots = self._reserved
            else:
                return
            if claimed is None:
                return
            self._launch(claimed, slots)

    def _launch(self, claimed: ClaimedAction, slots: dict[int, threading.Thread]) -> None:
        thread = threading.Thread(
            target=self._work,
            args=(claimed, slots),
            name=f"lapse-phase-{claimed.action_id}",
            daemon=True,
        )
        with self._lock:
            slots[claimed.action_id] = thread
        thread.start()

    def _work(self, claimed: ClaimedAction, slots: dict[int, threading.Thread]) -> None:
        try:
            self.runner.run_claimed(claimed)
        except Exception:
            # Not renewed any more: the lease runs out and the phase is tried again from
            # the step it reached, a lease later (a pause before a retry, not a tight loop).
            log.exception(
                "playbook phase ended by an unexpected error; it resumes once its lease ends",
                account=claimed.account_id,
                phase=claimed.phase,
                action=claimed.action_id,
            )
        finally:
            with self._lock:
                slots.pop(claimed.action_id, None)
            if self.after_phase is not None and not self._stopping.is_set():
                self.after_phase()
            self._kick.set()

    def _renew(self) -> None:
        period = max(self.lease.total_seconds() / 3, 0.2)
        while not self._stopping.wait(period):
            mine = self.running_ids()
            if not mine:
                continue
            try:
                held = self.queue.renew(self.owner, mine, self.lease)
            except Exception:
                log.exception("could not renew the leases of running phases")
                continue
            lost = (mine & self.running_ids()) - held
            if lost:
                # Each stops before its next step (PhaseSteps checks its claim there).
                log.error(
                    "leases lost: another daemon took these phases over", actions=sorted(lost)
                )
