"""What one billing sync (or wake-up) did, for logs, the CLI and the scheduler."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from daemon.domain.snapshot import RowError


@dataclass
class SyncReport:
    """What one billing sync did."""

    seen: int = 0
    transitions: Counter[str] = field(default_factory=Counter)
    row_errors: tuple[RowError, ...] = ()
    wakeups: dict[str, datetime | None] = field(default_factory=dict)
    braked: bool = False

    def summary(self) -> str:
        """One line for logs and the CLI."""
        moves = ", ".join(f"{k}: {v}" for k, v in sorted(self.transitions.items())) or "none"
        line = f"{self.seen} accounts, transitions {moves}, {len(self.row_errors)} rows skipped"
        return line + (" (SAFETY BRAKE ENGAGED: owing accounts held)" if self.braked else "")
