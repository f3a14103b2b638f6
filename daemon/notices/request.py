"""What the lifecycle engine asks the notify package to send."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from daemon.config.schema import PolicyConfig
from daemon.domain.notice_kinds import NoticeKind
from daemon.domain.snapshot import AccountSnapshot
from daemon.policy.model import LifecycleRecord


@dataclass(frozen=True)
class NoticeRequest:
    """One client notice to render.

    `number` is the reminder or warning number (0 for other kinds). `record`
    is the lifecycle record after the transition that sends the notice, so a
    final notice carries `suspend_at` and a suspension notice `delete_at`.
    `now` is timezone-aware UTC; `download_url` is an optional backup link
    offered in the suspension notice.

    Raises ValueError when `now` is naive or the record lacks the deadline the
    notice kind names.
    """

    kind: NoticeKind
    number: int
    snapshot: AccountSnapshot
    record: LifecycleRecord
    policy: PolicyConfig
    now: datetime
    download_url: str | None = None

    def __post_init__(self) -> None:
        if self.now.tzinfo is None:
            raise ValueError("NoticeRequest.now must be timezone-aware")
        # Rendering without the deadline the kind names would promise a date nobody knows.
        deadline = self.kind.facts.deadline
        if deadline is not None and getattr(self.record, deadline) is None:
            raise ValueError(f"a {self.kind} notice needs record.{deadline}")

    @property
    def label(self) -> str:
        """The notice as named in headers and logs, e.g. 'reminder#2' or 'final'."""
        return f"{self.kind}#{self.number}" if self.number else str(self.kind)
