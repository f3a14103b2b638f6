"""Moving lifecycle records between the policy's dataclass and the accounts table."""

from __future__ import annotations

from sqlalchemy.orm import Session

from daemon.domain.snapshot import AccountSnapshot
from daemon.domain.states import State
from daemon.domain.stored_snapshot import snapshot_from_json
from daemon.policy.model import LifecycleRecord
from daemon.store.models import Account

# The record fields that live in same-named columns of the accounts table.
_FIELDS = (
    "reminders_sent",
    "warnings_sent",
    "clock_start",
    "final_notice_at",
    "suspend_at",
    "suspended_at",
    "delete_at",
    "last_contact_at",
    "last_warning_at",
    "paused_since",
    "hold_reason",
    "hold_until",
)


def record_from_row(row: Account) -> LifecycleRecord:
    """Return the policy's view of an account row."""
    values = {name: getattr(row, name) for name in _FIELDS}
    return LifecycleRecord(
        account_id=row.id,
        state=State(row.state),
        resume_state=State(row.resume_state) if row.resume_state else None,
        **values,
    )


def record_columns(record: LifecycleRecord) -> dict[str, object]:
    """Return the accounts-table columns of `record` other than state (for a bulk insert)."""
    values: dict[str, object] = {name: getattr(record, name) for name in _FIELDS}
    values["resume_state"] = record.resume_state.value if record.resume_state else None
    return values


def write_record(row: Account, record: LifecycleRecord) -> None:
    """Copy `record` onto `row` (only the columns that differ, so clean rows stay clean)."""
    updates = {name: getattr(record, name) for name in _FIELDS}
    updates["state"] = record.state.value
    updates["resume_state"] = record.resume_state.value if record.resume_state else None
    for name, value in updates.items():
        if getattr(row, name) != value:
            setattr(row, name, value)


def stored_snapshot(row: Account) -> AccountSnapshot | None:
    """Return the snapshot last stored with `row`, or None before the first sync."""
    return snapshot_from_json(row.snapshot) if row.snapshot else None


def action_hosts(session: Session, account_id: str) -> str | None:
    """Return the hosts whose `max_parallel` a phase of the account counts against,
    space-separated in the order of its services (host names hold no space): every
    host the phase works on. None when it has no service (nothing runs on any host)."""
    account = session.get(Account, account_id)
    services = ((account.snapshot or {}).get("services") or []) if account else []
    hosts = (service.get("host") for service in services if isinstance(service, dict))
    named = list(dict.fromkeys(str(host) for host in hosts if host))
    return " ".join(named) or None


def split_hosts(hosts: str | None) -> tuple[str, ...]:
    """Return the host names of an action's `hosts` column (see action_hosts)."""
    return tuple(hosts.split()) if hosts else ()
