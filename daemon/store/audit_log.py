"""The read model of the audit log: is the chain intact, and what does it say of an account.

`lapse audit verify` and `lapse audit export` ask here; the chain itself is written
and checked by daemon.store.audit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from daemon.domain.errors import UnknownAccountError
from daemon.store.audit import verify_chain
from daemon.store.models import Account, AuditEntry


@dataclass(frozen=True)
class ChainCheck:
    """The problems found in the chain (none when intact) and how long the log is."""

    problems: list[str]
    entries: int


@dataclass(frozen=True)
class AuditRecord:
    """One entry of the audit log."""

    seq: int
    at: datetime
    kind: str
    summary: str
    data: dict[str, Any]
    hash: str


@dataclass(frozen=True)
class AccountAudit:
    """An account's entries in the audit log, in order, and whether the whole chain held."""

    chain_intact: bool
    entries: list[AuditRecord]


class AuditLog:
    """Reads and checks the audit log of one state database."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def check(self) -> ChainCheck:
        """Check every entry against the one before and the head (see verify_chain)."""
        with self.sessions() as session:
            problems = verify_chain(session)
            count = session.scalar(select(AuditEntry.seq).order_by(AuditEntry.seq.desc())) or 0
        return ChainCheck(problems, count)

    def of(self, account_id: str) -> AccountAudit:
        """Return the account's entries and whether the chain is intact.

        Raises UnknownAccountError for an account the state database does not know.
        """
        with self.sessions() as session:
            if session.get(Account, account_id) is None:
                raise UnknownAccountError(f"no account {account_id!r} in the state database")
            intact = not verify_chain(session)
            rows = session.scalars(
                select(AuditEntry)
                .where(AuditEntry.account_id == account_id)
                .order_by(AuditEntry.seq)
            )
            entries = [_record(row) for row in rows]
        return AccountAudit(intact, entries)


def _record(row: AuditEntry) -> AuditRecord:
    return AuditRecord(row.seq, row.at, row.kind, row.summary, row.data, row.hash)
