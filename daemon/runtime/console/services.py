"""What the console reads and does, gathered from the daemon's parts: the read models the
command line asks, and the services its commands call. Nothing here is the console's own."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from email import message_from_bytes, policy
from typing import Any

from daemon.backup.service import BackupService
from daemon.backup.views import BackupView
from daemon.domain.states import FAILED_STATES, State
from daemon.lifecycle.approvals import ApprovalRecord, Approvals, WaitingApproval
from daemon.lifecycle.engine import LifecycleEngine
from daemon.lifecycle.history import History, LetterView
from daemon.lifecycle.queries import AccountView, PendingAction
from daemon.playbooks.runner import PlaybookRunner
from daemon.policy import commands
from daemon.runtime.app import Readers
from daemon.store.audit_log import AuditRecord

# States whose balance is not counted as money overdue on the overview (a deleted
# account's debt stays overdue: deletion ends the hosting, not what is owed).
_NOT_OVERDUE = frozenset({State.ACTIVE.value, State.EXEMPT.value})


@dataclass(frozen=True)
class Overview:
    """The overview page's figures."""

    by_state: dict[str, int]
    overdue: dict[str, Decimal]
    pending_actions: int
    approvals: list[WaitingApproval]
    brake: dict[str, Any] | None
    last_sync: datetime | None
    failing: list[AccountView]


@dataclass(frozen=True)
class Letter:
    """A client notice with the text it was sent with."""

    id: int
    notice: str
    number: int
    status: str
    subject: str
    recipient: str
    created_at: datetime
    sent_at: datetime | None
    text: str


@dataclass(frozen=True)
class AccountPage:
    """Everything the account page shows."""

    view: AccountView
    email: str | None
    domains: list[str]
    history: History
    letters: list[Letter]
    pending: list[PendingAction]
    backups: list[BackupView]
    approvals: list[ApprovalRecord]
    audit: list[AuditRecord]
    audit_intact: bool


@dataclass(frozen=True)
class Match:
    """An account found by search, with what matched."""

    account_id: str
    state: str
    email: str
    domains: list[str]


@dataclass
class ConsoleServices:
    """The daemon's parts the console uses; `wake` asks the scheduler to evaluate an
    account (and run what it queued) as soon as its worker is free."""

    readers: Readers
    lifecycle: LifecycleEngine
    runner: PlaybookRunner
    approvals: Approvals
    backups: BackupService
    last_sync: Callable[[], datetime | None]
    wake: Callable[[str], None]

    # -- reading ---------------------------------------------------------------------

    def overview(self) -> Overview:
        """The overview: accounts per state, money overdue per currency, the queue, the
        approvals waiting, the brake, the last sync, the accounts whose phase failed."""
        census = self.readers.accounts.census()
        overdue: dict[str, Decimal] = defaultdict(Decimal)
        failing = []
        for view in self.readers.accounts.views():
            if view.record.state.value not in _NOT_OVERDUE and view.balance > 0:
                overdue[view.currency] += view.balance
            if view.record.state in FAILED_STATES:
                failing.append(view)
        return Overview(
            dict(sorted(census.by_state.items())),
            dict(sorted(overdue.items())),
            census.pending_actions,
            self.approvals.waiting(),
            self.lifecycle.brake.status(),
            self.last_sync(),
            failing,
        )

    def account(self, account_id: str) -> AccountPage:
        """Everything recorded about the account. Raises UnknownAccountError."""
        view = self.readers.accounts.view(account_id)
        stored = self.readers.accounts.stored(account_id)
        snapshot = stored.snapshot
        history = self.readers.history.of(account_id)
        audit = self.readers.audit.of(account_id)
        return AccountPage(
            view,
            snapshot.contact.email if snapshot else None,
            [d for s in snapshot.services for d in s.domains] if snapshot else [],
            history,
            [self._letter(letter) for letter in history.letters],
            self.readers.accounts.pending_actions(account_id),
            self.backups.list(account_id),
            self.approvals.of(account_id),
            audit.entries,
            audit.chain_intact,
        )

    def _letter(self, letter: LetterView) -> Letter:
        raw = self.readers.letters.raw(letter.id)
        text = ""
        if raw is not None:
            message = message_from_bytes(raw, policy=policy.default)
            body = message.get_body(preferencelist=("plain",))
            text = body.get_content() if body is not None else ""
        return Letter(
            letter.id,
            letter.notice,
            letter.number,
            str(letter.status),
            letter.subject,
            letter.recipient,
            letter.created_at,
            letter.sent_at,
            text,
        )

    def search(self, text: str) -> list[Match]:
        """Accounts whose id, domain or contact e-mail contains `text` (any case)."""
        needle = text.strip().lower()
        if not needle:
            return []
        found = []
        for snapshot, record in self.readers.accounts.synced():
            domains = [d for s in snapshot.services for d in s.domains]
            haystack = [snapshot.account_id, snapshot.contact.email, *domains]
            if any(needle in value.lower() for value in haystack):
                found.append(
                    Match(snapshot.account_id, record.label, snapshot.contact.email, domains)
                )
        return found[:200]

    # -- acting (each through the service the command line's command calls) -----------

    def hold(self, account_id: str, actor: str, reason: str) -> str:
        """`lapse hold ACCOUNT --reason`. Raises CommandRefusedError, UnknownAccountError."""
        decision = self.lifecycle.apply_command(
            account_id, commands.hold, actor, reason=reason, until=None, legal=False
        )
        return f"{decision.from_state} -> {decision.record.label}"

    def release(self, account_id: str, actor: str) -> str:
        """`lapse release ACCOUNT`; what the release queued runs at the daemon's next turn."""
        decision = self.lifecycle.apply_command(account_id, commands.release, actor)
        self.wake(account_id)
        return f"{decision.from_state} -> {decision.record.label}"

    def retry(self, account_id: str, actor: str) -> str:
        """`lapse retry ACCOUNT`, run by the daemon's worker. Raises ValueError."""
        self.runner.queue_retry(account_id, actor)
        self.wake(account_id)
        return "failed phase queued again"

    def restore(self, account_id: str) -> str:
        """`lapse playbook run ACCOUNT restore`: the restore phase extracts the newest
        verified backup into staging and swaps it in; run by the daemon's worker."""
        self.runner.queue_phase(account_id, "restore")
        self.wake(account_id)
        return "restore phase queued"

    def approve(self, account_id: str, actor: str) -> str:
        """`lapse approve ACCOUNT`. Raises NothingToDecideError."""
        phase = self.approvals.approve(account_id, actor)
        self.wake(account_id)
        return f"{phase} approved"

    def reject(self, account_id: str, actor: str, reason: str) -> str:
        """`lapse reject ACCOUNT --reason`. Raises NothingToDecideError, CommandRefusedError."""
        phase = self.approvals.reject(account_id, actor, reason)
        return f"{phase} rejected; the account is on hold"

    def release_brake(self, actor: str) -> str:
        """`lapse brake release`. Raises ValueError when it is not engaged."""
        released = self.lifecycle.brake.release(actor)
        return f"safety brake released (was: {released['reason']})"
