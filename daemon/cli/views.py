"""Read-only views of the state database: status, accounts, history."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import click

from daemon.cli.common import (
    account_argument,
    amount,
    config_option,
    config_source,
    json_option,
    open_views,
    resolve_config_path,
    show_json,
    show_table,
)
from daemon.domain.states import NoticeStatus, State, StepStatus
from daemon.lifecycle.history import History
from daemon.lifecycle.queries import AccountView, PendingAction
from daemon.runtime.state import describe_state
from daemon.store.work_queue import QueueFigures


def _account_summary(row: AccountView) -> dict[str, Any]:
    record = row.record
    return {
        "account_id": row.id,
        "plan": row.plan,
        "state": record.label,
        "balance": amount(row.balance),
        "currency": row.currency,
        "next_deadline": row.next_wake_at,
        "suspend_at": record.suspend_at,
        "delete_at": record.delete_at,
        "hold": record.hold_reason,
    }


@click.command()
@account_argument(required=False)
@json_option
@config_option
def status(account: str | None, as_json: bool, config_path: Path | None) -> None:
    """Show the config and state database in use, and accounts per stage, or one ACCOUNT
    in detail."""
    path = resolve_config_path(config_path)
    config, readers = open_views(config_path)
    using = {"config": config_source(path), "state_database": describe_state(config.state)}
    if account is not None:
        row = readers.accounts.view(account)
        pending_actions = _pending(readers.accounts.pending_actions(account))
        detail = _account_summary(row) | {"pending_actions": pending_actions}
        if as_json:
            show_json(detail | using)
        else:
            show_table(f"account {account}", ["field", "value"], list(detail.items()))
            _show_using(using)
        return
    census = readers.accounts.census()
    counts, pending = census.by_state, census.pending_actions
    queue = readers.queue.figures()
    if as_json:
        show_json(
            {
                "accounts": census.accounts,
                "by_state": dict(counts),
                "pending_actions": pending,
                "queue": _queue_summary(queue),
            }
            | using
        )
        return
    show_table("accounts by state", ["state", "accounts"], sorted(counts.items()))
    click.echo(f"{census.accounts} accounts; {pending} playbook action(s) pending")
    _show_queue(queue)
    _show_using(using)


def _show_using(using: dict[str, str]) -> None:
    click.echo(f"config: {using['config']}")
    click.echo(f"state database: {using['state_database']}")


def _queue_summary(queue: QueueFigures) -> dict[str, Any]:
    """The phase queue and the daemons, for `status --json`."""
    return {
        "phases": [
            {
                "phase": phase,
                "host": host,
                "queued": queue.queued[key],
                "in_progress": queue.running[key],
            }
            for key in sorted(set(queue.queued) | set(queue.running))
            for phase, host in [key]
        ],
        "oldest_wait_s": queue.oldest_wait_s,
        "daemons": [
            {
                "id": d.id,
                "host": d.host,
                "pid": d.pid,
                "leader": d.leader,
                "alive": d.alive,
                "phases_in_progress": d.running,
                "seen_at": d.seen_at,
            }
            for d in queue.daemons
        ],
        "leader": queue.leader.id if queue.leader else None,
    }


def _show_queue(queue: QueueFigures) -> None:
    """The phase queue per phase and host, its oldest wait, and the daemons."""
    rows = [
        [phase, host, queue.queued[(phase, host)], queue.running[(phase, host)]]
        for phase, host in sorted(set(queue.queued) | set(queue.running))
    ]
    if rows:
        show_table("playbook phases", ["phase", "host", "queued", "in progress"], rows)
    if queue.oldest_wait_s is not None:
        click.echo(f"oldest queued phase waiting {queue.oldest_wait_s:.0f} s")
    daemons = [
        [d.id, "leader" if d.leader else "follower", "alive" if d.alive else "gone", d.running]
        for d in queue.daemons
    ]
    if daemons:
        show_table("daemons", ["daemon", "role", "heartbeat", "phases running"], daemons)
    else:
        click.echo("no daemon running")


@click.command()
@click.option(
    "--state",
    "state_filter",
    type=click.Choice([state.value for state in State]),
    help="Only accounts in this state.",
)
@json_option
@config_option
def accounts(state_filter: str | None, as_json: bool, config_path: Path | None) -> None:
    """List accounts with their stage and next deadline."""
    summaries = [
        _account_summary(row) for row in open_views(config_path)[1].accounts.views(state_filter)
    ]
    if as_json:
        show_json(summaries)
        return
    columns = ["account_id", "plan", "state", "balance", "currency", "next_deadline"]
    show_table("accounts", columns, [[s[c] for c in columns] for s in summaries])


@click.command()
@account_argument()
@json_option
@config_option
def history(account: str, as_json: bool, config_path: Path | None) -> None:
    """Show ACCOUNT's timeline: every transition and every notice, in order."""
    entries = _timeline(open_views(config_path, account)[1].history.of(account))
    if as_json:
        show_json(entries)
        return
    rows = [[e["at"], e["kind"], e["what"], e["detail"], e["actor"]] for e in entries]
    show_table(f"history of {account}", ["when", "kind", "what", "detail", "by"], rows)


def _timeline(history: History) -> list[dict[str, Any]]:
    events, letters = history.events, history.letters
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
        + _step_entries(history)
    )
    entries.sort(key=_order)
    return entries


def _step_entries(history: History) -> list[dict[str, Any]]:
    """One entry per playbook step run on the account's hosts, with its outcome."""
    rows = history.steps
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


def _pending(actions: list[PendingAction]) -> list[str]:
    return [f"{a.kind}:{a.name} since {a.created_at:%Y-%m-%d %H:%M}" for a in actions]


COMMANDS = (status, accounts, history)
