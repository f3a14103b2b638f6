"""Where things stand: an account in its lifecycle (and the groups of states the rules
name), and the status of every row the state database tracks (queued phases, their
runs and steps, backups, client notices).

The values are the strings stored in the database; the code writes and compares
the members, never the bare strings (tests/unit/test_no_bare_statuses.py).
Payment events have no status column: one is pending while its `handled_at` is empty
(daemon.store.payment_events).
"""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    """Where an account stands in its lifecycle."""

    ACTIVE = "active"
    OVERDUE = "overdue"
    REMINDED = "reminded"
    FINAL_NOTICE = "final-notice"
    SUSPENDED = "suspended"
    REMOVAL_WARNED = "removal-warned"
    DELETED = "deleted"
    # Set by the playbook runner when a phase failed on the host; ops resolve them.
    SUSPEND_FAILED = "suspend-failed"
    DELETE_FAILED = "delete-failed"
    # Side states: the clock stops while in them and resumes where it was.
    ON_HOLD = "on-hold"
    PAYMENT_PLAN = "payment-plan"
    EXEMPT = "exempt"
    LEGAL_HOLD = "legal-hold"
    # Suspended by an operator (`lapse suspend`): stays so, paid or not, until `lapse unsuspend`.
    OPS_SUSPENDED = "ops-suspended"


SIDE_STATES = frozenset(
    {State.ON_HOLD, State.PAYMENT_PLAN, State.EXEMPT, State.LEGAL_HOLD, State.OPS_SUSPENDED}
)
SUSPENDED_STATES = frozenset({State.SUSPENDED, State.REMOVAL_WARNED})
DUNNING_STATES = frozenset({State.OVERDUE, State.REMINDED, State.FINAL_NOTICE})
FAILED_STATES = frozenset({State.SUSPEND_FAILED, State.DELETE_FAILED})


class ActionStatus(StrEnum):
    """Where a queued playbook phase (a row of `scheduled_actions`) stands.

    - PENDING: queued by a transition (daemon.lifecycle.actions) or by an operator
      (`lapse playbook run`), or put back by `lapse retry`; waits for the runner.
    - RUNNING: claimed by one runner process (`claimed_by` names it); it stays
      running when paused for shutdown, and the next runner resumes it.
    - DONE: every host ran the phase; set by the lifecycle engine's `phase_done`,
      with the client notice the success makes true.
    - FAILED: a step failed, the tree rule or the deletion proof refused; the
      account is suspend-failed or delete-failed until `lapse retry` makes it
      PENDING again.
    - CANCELLED: a payment stopped the phase mid-run, or an unsuspend met a
      suspend that never started and cancelled it.
    """

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class RunStatus(StrEnum):
    """Where one run of a phase on one host (a row of `playbook_runs`) stands.

    - RUNNING: opened by the runner with its step records, or reopened by a
      resumed execution or `lapse retry`.
    - DONE: every step of the run ran or was skipped.
    - FAILED: a step, the tree check or the deletion proof failed; `lapse retry`
      makes it RUNNING again.
    - CANCELLED: the phase it belongs to was cancelled by a payment while it ran.
    """

    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class StepStatus(StrEnum):
    """Where one step of a run (a row of `step_records`) stands.

    - PENDING: recorded when the run opened; also set again when a payment stopped
      the step inside (it runs again if billing does not confirm the payment), and
      by `lapse retry` for the step that failed.
    - RUNNING: recorded right before the step runs; a crash leaves it so, and the
      resumed run runs it again (steps are idempotent).
    - DONE: the step ran; `changed` says whether it changed the host.
    - FAILED: the step failed after its retries; the run fails with it.
    - SKIPPED: its `when` condition was false.
    - UNDONE: a suspend step whose undo ran in the following unsuspend.
    """

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"
    UNDONE = "undone"


class BackupStatus(StrEnum):
    """Where a backup (a row of `backups`) stands.

    - RUNNING: written when the backup starts; a process that stopped meanwhile
      leaves it so until the next start marks it FAILED.
    - COMPLETED: every object is stored and the manifest recorded.
    - VERIFIED: every object was re-read and matched the manifest (`lapse verify`,
      or the proof before a deletion).
    - FAILED: the backup failed, was stopped by a payment, or was interrupted;
      its objects were removed.
    - CORRUPT: a verification or a proof found an object missing or changed.
    - EXPIRED: past its retention, its objects were deleted from the store.
    """

    RUNNING = "running"
    COMPLETED = "completed"
    VERIFIED = "verified"
    FAILED = "failed"
    CORRUPT = "corrupt"
    EXPIRED = "expired"


# Backups that may be relied on (proven, restored); a corrupt, failed, running or
# expired one never is.
PROVABLE_BACKUPS = (BackupStatus.COMPLETED, BackupStatus.VERIFIED)
# Backups that stored every object, whatever a check found since: they can be verified.
COMPLETE_BACKUPS = (*PROVABLE_BACKUPS, BackupStatus.CORRUPT)


class NoticeStatus(StrEnum):
    """Where a client notice (a row of `correspondence`) stands.

    - PENDING: written before delivery; a temporary delivery failure leaves it so
      for the next round.
    - SENT: the mail server (or the outbox) accepted it; `receipt` says how.
    - FAILED: it could not be written, or delivery failed for good; ops are alerted.
    """

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class RestoreOutcome(StrEnum):
    """How a restore ended, as the event that records it says (`details.outcome`)."""

    RESTORED = "restored"
    FAILED = "failed"


class ApprovalStatus(StrEnum):
    """Where a person's approval of a queued phase (a row of `approvals`) stands.

    - WAITING: the plan asks for approval of this phase; the runner leaves the
      action pending until someone decides (daemon.playbooks.approvals).
    - APPROVED: a person approved it; the runner may pick the phase, which still
      passes every safety check when it runs.
    - REJECTED: a person rejected it; the action is cancelled and the account is
      put on hold (daemon.lifecycle.approvals).
    """

    WAITING = "waiting"
    APPROVED = "approved"
    REJECTED = "rejected"
