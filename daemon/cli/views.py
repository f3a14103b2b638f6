"""Read-only views of the state database: status, accounts, history."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from daemon.cli.common import config_option, json_option, read_config, show_json, show_table
from daemon.domain.errors import UnknownAccountError
from daemon.domain.states import ActionStatus, NoticeStatus, StepStatus
from daemon.runtime.app import open_state
from daemon.store.migrate import migrate
from daemon.store.models import (
    Account,
    Correspondence,
    Event,
    PlaybookRun,
    ScheduledAction,
    StepRecord,
)
from daemon.store.records import record_from_row


def _session(config_path: Path | None) -> Session:
    engine, sessions = open_state(read_config(config_path))
    migrate(engine)
    return sessions()


def _account_summary(row: Account) -> dict[str, Any]:
    record = record_from_row(row)
    return {
        "account": row.id,
        "plan": row.plan,
        "state": record.label,
        "balance": f"{row.balance.normalize():f} {row.currency}",
        "next_deadline": row.next_wake_at,
        "suspend_at": row.suspend_at,
        "delete_at": row.delete_at,
        "hold": row.hold_reason,
    }


@click.command()
@click.argument("account", required=False)
@json_option
@config_option
def status(account: str | None, as_json: bool, config_path: Path | None) -> None:
    """Show accounts per stage, or one ACCOUNT in detail."""
    with _session(config_path) as session:
        if account is not None:
            row = session.get(Account, account)
            if row is None:
                raise UnknownAccountError(f"no account {account!r} in the state database")
            detail = _account_summary(row) | {"pending_actions": _pending(session, account)}
            if as_json:
                show_json(detail)
            else:
                show_table(f"account {account}", ["field", "value"], list(detail.items()))
            return
        rows = session.scalars(select(Account)).all()
        counts = Counter(record_from_row(row).state.value for row in rows)
        pending = session.scalar(
            select(func.count())
            .select_from(ScheduledAction)
            .where(ScheduledAction.status == ActionStatus.PENDING)
        )
    if as_json:
        show_json({"accounts": len(rows), "by_state": dict(counts), "pending_actions": pending})
        return
    show_table("accounts by state", ["state", "accounts"], sorted(counts.items()))
    click.echo(f"{len(rows)} accounts; {pending} playbook action(s) pending")


@click.command()
@click.option("--state", "state_filter", help="Only accounts in this state (e.g. final-notice).")
@json_option
@config_option
def accounts(state_filter: str | None, as_json: bool, config_path: Path | None) -> None:
    """List accounts with their stage and next deadline."""
    with _session(config_path) as session:
        query = select(Account).order_by(Account.id)
        if state_filter:
            query = query.where(Account.state == state_filter)
        summaries = [_account_summary(row) for row in session.scalars(query)]
    if as_json:
        show_json(summaries)
        return
    columns = ["account", "plan", "state", "balance", "next_deadline"]
    show_table("accounts", columns, [[s[c] for c in columns] for s in summaries])


@click.command()
@click.argument("account")
@json_option
@config_option
def history(account: str, as_json: bool, config_path: Path | None) -> None:
    """Show ACCOUNT's timeline: every transition and every notice, in order."""
    with _session(config_path) as session:
        if session.get(Account, account) is None:
            raise UnknownAccountError(f"no account {account!r} in the state database")
        entries = _timeline(session, account)
    if as_json:
        show_json(entries)
        return
    rows = [[e["at"], e["kind"], e["what"], e["detail"], e["actor"]] for e in entries]
    show_table(f"history of {account}", ["when", "kind", "what", "detail", "by"], rows)


def _timeline(session: Session, account: str) -> list[dict[str, Any]]:
    events = session.scalars(select(Event).where(Event.account_id == account)).all()
    letters = session.scalars(
        select(Correspondence).where(Correspondence.account_id == account)
    ).all()
    entries = (
        [
            {
                "at": e.at,
                "kind": "transition",
                "what": f"{e.from_state} -> {e.details.get('label', e.to_state)}",
                "detail": e.reason,
                "actor": e.actor,
                "order": (e.at, 0, e.id),
            }
            for e in events
        ]
        + [
            {
                "at": c.sent_at or c.created_at,
                "kind": f"notice ({c.status})",
                "what": c.notice + (f" #{c.number}" if c.number else ""),
                # The id is what `lapse notices show ID` takes.
                "detail": f"notice {c.id} to {c.recipient}: {c.subject} [{c.message_id}]"
                + (f" ({c.receipt})" if c.status == NoticeStatus.FAILED else ""),
                "actor": c.transport,
                "order": (c.created_at, 1, c.id),
            }
            for c in letters
        ]
        + _step_entries(session, account)
    )
    entries.sort(key=_order)
    return entries


def _step_entries(session: Session, account: str) -> list[dict[str, Any]]:
    """One entry per playbook step run on the account's hosts, with its outcome."""
    rows = session.execute(
        select(PlaybookRun, StepRecord)
        .join(StepRecord, StepRecord.run_id == PlaybookRun.id)
        .where(PlaybookRun.account_id == account, StepRecord.started_at.is_not(None))
    ).all()
    entries = []
    for run, step in rows:
        outcome = (
            step.status
            if step.status != StepStatus.DONE or step.changed
            else f"{StepStatus.DONE}, unchanged"
        )
        entries.append(
            {
                "at": step.started_at,
                "kind": f"step ({outcome})",
                "what": f"{run.phase} {step.position + 1}: {step.name}",
                "detail": step.error or f"{run.playbook} on {run.host}",
                "actor": "runner",
                "order": (step.started_at, 2, step.id),
            }
        )
    return entries


def _order(entry: dict[str, object]) -> tuple[datetime, int, int]:
    """Return the sort key stored under "order", removing it from the entry."""
    key = entry.pop("order")
    assert isinstance(key, tuple)
    return key


def _pending(session: Session, account: str) -> list[str]:
    actions = session.scalars(
        select(ScheduledAction).where(
            ScheduledAction.account_id == account, ScheduledAction.status == ActionStatus.PENDING
        )
    ).all()
    return [f"{a.kind}:{a.name} since {a.created_at:%Y-%m-%d %H:%M}" for a in actions]


COMMANDS = (status, accounts, history)
