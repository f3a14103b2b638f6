"""The notice desk: client notices written to the DB first, delivered after commit.

A notice is inserted as `pending` in the same transaction as the transition
that asked for it, then delivered, then marked `sent` with the server's reply.
A crash in between leaves it pending and it is delivered at the next start;
the Message-ID is the idempotency key (the outbox never writes one twice).

Several threads (the sync, the payments, each running phase) and several daemons
deliver: a notice is sent once. Notices are delivered a batch at a time (as many as
the delivery makes durable together: the outbox's files, flushed at once; one for
SMTP), with their rows locked (`FOR UPDATE SKIP LOCKED` on PostgreSQL: another daemon
skips them, then finds them sent) until the batch is marked sent in one transaction,
and in one process one thread delivers at a time; one that finds another delivering
leaves it a note to go round once more (SQLite has no row locks, and one daemon).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from email.utils import make_msgid

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from daemon.config.schema import PolicyConfig
from daemon.domain.clock import Clock
from daemon.domain.notice_kinds import NoticeKind
from daemon.domain.snapshot import AccountSnapshot
from daemon.domain.states import NoticeStatus, State
from daemon.notices.alerts import OpsAlerts
from daemon.notices.compose import ComposedNotice
from daemon.notices.delivery.base import (
    Delivery,
    PermanentDeliveryError,
    TemporaryDeliveryError,
)
from daemon.notices.errors import NoticeError
from daemon.notices.request import NoticeRequest
from daemon.policy import accept_final_notice
from daemon.policy.model import Action, LifecycleRecord
from daemon.policy.rules import late_final_notice
from daemon.store.models import Account, Correspondence, Event
from daemon.store.records import record_from_row, write_record

log = structlog.get_logger("lapse.notices")

Composer = Callable[[NoticeRequest], ComposedNotice]
# The notices waiting to be delivered.
_PENDING = Correspondence.status == NoticeStatus.PENDING
# What handing a letter to the delivery gave: its receipt, or the refusal.
_Outcome = str | TemporaryDeliveryError | PermanentDeliveryError


class NoticeDesk:
    """Queues notices inside lifecycle transactions and delivers them afterwards."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        compose: Composer,
        delivery: Delivery,
        clock: Clock,
        alerts: OpsAlerts | None = None,
    ) -> None:
        self.sessions = sessions
        self.compose = compose
        self.delivery = delivery
        self.clock = clock
        self.alerts = alerts
        # Set by the lifecycle engine: plan -> its policy (for a late final notice).
        self.policy_for: Callable[[str], PolicyConfig] | None = None
        # Set by the app once backups exist: (account id, made since) -> a client download
        # link to the newest verified backup made since then, or None.
        self.download_link: Callable[[str, datetime | None], str | None] | None = None
        self._delivering = threading.Lock()
        self._again = threading.Event()

    def _download_url(
        self, account_id: str, kind: NoticeKind, since: datetime | None
    ) -> str | None:
        """Return the backup link a notice that offers one (a suspension or removal warning)
        carries, if there is one: to the newest verified backup made at or after `since`
        (any when None)."""
        if self.download_link is None or not kind.facts.offers_download:
            return None
        return self.download_link(account_id, since)

    def queue(
        self,
        session: Session,
        snapshot: AccountSnapshot,
        record: LifecycleRecord,
        policy: PolicyConfig,
        action: Action,
        now: datetime,
        backup_since: datetime | None = None,
    ) -> Correspondence:
        """Render the notice `action` asks for and insert it as pending in `session`.

        A download link offered goes to the newest verified backup made at or after
        `backup_since` (the suspension notice: the backup its phase just took).

        A notice that cannot be written at all (an unusable address, a broken
        operator template) is recorded as failed and ops are alerted; the
        transition is still recorded, and a final notice that was never sent
        never leads to suspension.
        """
        assert action.notice is not None
        request = NoticeRequest(
            kind=action.notice,
            number=action.number,
            snapshot=snapshot,
            record=record,
            policy=policy,
            now=now,
            download_url=self._download_url(snapshot.account_id, action.notice, backup_since),
        )
        try:
            composed = self.compose(request)
        except NoticeError as error:
            return self._unwritable(session, snapshot, action, now, str(error))
        letter = Correspondence(
            account_id=snapshot.account_id,
            notice=action.notice.value,
            number=action.number,
            recipient=composed.recipient,
            subject=composed.subject,
            message_id=composed.message_id,
            status=NoticeStatus.PENDING,
            transport=self.delivery.name,
            created_at=now,
            raw=composed.raw,
        )
        session.add(letter)
        return letter

    def _unwritable(
        self,
        session: Session,
        snapshot: AccountSnapshot,
        action: Action,
        now: datetime,
        error: str,
    ) -> Correspondence:
        """Record a notice that could not be composed as failed, and alert ops."""
        assert action.notice is not None
        letter = Correspondence(
            account_id=snapshot.account_id,
            notice=action.notice.value,
            number=action.number,
            recipient=snapshot.contact.email,
            subject="(not written)",
            # Unique like every Message-ID; no message exists to carry it.
            message_id=make_msgid(domain="unwritten.invalid"),
            status=NoticeStatus.FAILED,
            transport=self.delivery.name,
            created_at=now,
            receipt=error,
            raw=b"",
        )
        session.add(letter)
        self._refused(session, letter, error)
        return letter

    def deliver_pending(self) -> int:
        """Deliver every pending notice, oldest first.

        Returns how many this call delivered (none when another thread of this process
        delivers: it goes round once more for the caller's). A temporary failure leaves
        the notice pending for the next round; a permanent one marks it failed.
        """
        delivered = 0
        self._again.set()
        while self._again.is_set():
            if not self._delivering.acquire(blocking=False):
                return delivered  # the thread delivering saw the note and goes round again
            try:
                while self._again.is_set():
                    self._again.clear()
                    delivered += self._deliver_round()
            finally:
                self._delivering.release()
        return delivered

    def _deliver_round(self) -> int:
        """Deliver the notices pending now, oldest first, a batch at a time (the delivery's
        `batch_size`); return how many were delivered."""
        with self.sessions() as session:
            # Only their ids: the letters themselves are loaded a batch at a time.
            ids = session.scalars(
                select(Correspondence.id).where(_PENDING).order_by(Correspondence.id)
            ).all()
        size = max(1, self.delivery.batch_size)
        return sum(self._deliver_batch(ids[at : at + size]) for at in range(0, len(ids), size))

    def _deliver_batch(self, ids: Sequence[int]) -> int:
        """Deliver the letters `ids` that are still pending, durable together, and record
        them in one transaction; return how many were delivered.

        A letter is marked sent only once the delivery made it durable; when that fails,
        the batch stays pending (a delivery names a letter's copy by its Message-ID, so
        delivering it again replaces it, as after a crash between the two).
        """
        with self.sessions.begin() as session:
            # Locked until marked sent; another daemon skips them, then reads them sent.
            letters = session.scalars(
                select(Correspondence)
                .where(Correspondence.id.in_(ids), _PENDING)
                .order_by(Correspondence.id)
                .with_for_update(skip_locked=True)
            ).all()
            outcomes: list[tuple[Correspondence, _Outcome]] = []
            try:
                with self.delivery.together():
                    outcomes.extend((letter, self._hand_over(letter)) for letter in letters)
            except TemporaryDeliveryError as error:
                # Nothing recorded yet: the batch stays pending for the next round.
                log.warning("notice delivery deferred", notices=len(letters), error=str(error))
                return 0
            return sum(
                self._record_outcome(session, letter, outcome) for letter, outcome in outcomes
            )

    def _hand_over(self, letter: Correspondence) -> _Outcome:
        """Give the delivery `letter`'s message; return its receipt, or the error it
        raised."""
        try:
            return self.delivery.deliver_stored(letter.raw, letter.message_id)
        except (TemporaryDeliveryError, PermanentDeliveryError) as error:
            return error

    def _record_outcome(self, session: Session, letter: Correspondence, outcome: _Outcome) -> bool:
        """Record what delivering `letter` gave: a receipt marks it sent (and starts the
        notice period of a final notice), a permanent refusal marks it failed, a temporary
        one leaves it pending for the next round. Returns whether it was sent."""
        if isinstance(outcome, PermanentDeliveryError):
            letter.status, letter.receipt = NoticeStatus.FAILED, str(outcome)
            self._refused(session, letter, str(outcome))
            return False
        if isinstance(outcome, TemporaryDeliveryError):
            log.warning(
                "notice delivery deferred",
                account=letter.account_id,
                notice=letter.notice,
                error=str(outcome),
            )
            return False
        letter.status, letter.receipt, letter.sent_at = NoticeStatus.SENT, outcome, self.clock()
        if _starts_notice_period(letter.notice):
            self._final_notice_accepted(session, letter.account_id, letter.sent_at)
        log.info(
            "notice sent",
            account=letter.account_id,
            notice=letter.notice,
            number=letter.number,
            to=letter.recipient,
            message_id=letter.message_id,
        )
        return True

    def _final_notice_accepted(self, session: Session, account_id: str, at: datetime) -> None:
        """Start the notice period: the account's final notice was accepted at `at`."""
        row = session.get(Account, account_id)
        if row is None:
            return
        record = record_from_row(row)
        accepted = accept_final_notice(record, at)
        if accepted is record:
            return
        moved = self._late(row, accepted, at)
        write_record(row, moved or accepted)
        # Evaluate it again at the next sync, which re-arms its wake-up from the record.
        row.next_wake_at = at

    def _late(self, row: Account, record: LifecycleRecord, at: datetime) -> LifecycleRecord | None:
        """Return the record with later instants when the final notice was accepted too
        late for the one it names (see late_final_notice), recording why and alerting ops;
        None when the named instant holds."""
        snapshot = row.snapshot or {}
        zone = str((snapshot.get("contact") or {}).get("timezone") or "UTC")
        if self.policy_for is None:
            return None
        moved = late_final_notice(record, at, self.policy_for(row.plan), zone)
        if moved is None:
            return None
        what = (
            f"final notice accepted by the mail server only at {at:%Y-%m-%d %H:%M} UTC: "
            f"the notice names suspension at {record.suspend_at:%Y-%m-%d %H:%M} UTC, which "
            f"would cut the notice period short; suspension moves to "
            f"{moved.suspend_at:%Y-%m-%d %H:%M} UTC"
        )
        self._add_event(row, what, at)
        if self.alerts is not None:
            self.alerts.alert("final-notice-late", row.id, what, at)
        return moved

    @staticmethod
    def _add_event(row: Account, reason: str, at: datetime) -> None:
        """Append an event to `row`'s account in the session `row` belongs to."""
        session = Session.object_session(row)
        assert session is not None
        session.add(
            Event(
                account_id=row.id,
                at=at,
                from_state=row.state,
                to_state=row.state,
                reason=reason,
                actor="notices",
                details={"label": row.state, "actions": []},
            )
        )

    def _refused(self, session: Session, letter: Correspondence, error: str) -> None:
        """Record a notice the mail server refused for good and alert ops.

        A refused final notice holds the account at final-notice: it is never
        suspended on a notice the client did not get (the policy waits for
        acceptance), and the event log says why.
        """
        now = self.clock()
        what = f"{letter.notice} notice to {letter.recipient} not delivered: {error}"
        account = session.get(Account, letter.account_id)
        held = account is not None and account.state == State.FINAL_NOTICE.value
        if _starts_notice_period(letter.notice) and held:
            session.add(
                Event(
                    account_id=letter.account_id,
                    at=now,
                    from_state=State.FINAL_NOTICE.value,
                    to_state=State.FINAL_NOTICE.value,
                    reason=f"{what}; suspension withheld until a final notice is delivered",
                    actor="notices",
                    details={"label": State.FINAL_NOTICE.value, "actions": []},
                )
            )
        if self.alerts is not None:
            self.alerts.alert("notice-refused", letter.account_id, what, now)
        else:
            log.error("notice delivery failed", account=letter.account_id, detail=what)


def _starts_notice_period(notice: str) -> bool:
    """Return whether a notice of the kind named `notice` (as the correspondence log
    stores it) starts the notice period before suspension: the final notice."""
    kind = NoticeKind.named(notice)
    return kind is not None and kind.facts.starts_notice_period
