"""What the daemon tells a monitor: /healthz, the /metrics exposition, and the dashboard
and alert rules shipped in monitoring/ (docs/monitoring.md), which may only use names the
daemon exports."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from daemon.domain.phases import PLAYBOOK_PHASES
from daemon.domain.states import ActionStatus, ApprovalStatus, NoticeStatus, State
from daemon.runtime.app import App
from daemon.runtime.http.health import SyncHealth, health
from daemon.runtime.http.metrics import LapseCollector, make_registry
from daemon.store.models import Approval, Correspondence, DaemonFlag, ScheduledAction

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "monitoring" / "grafana-dashboard.json"
ALERTS = ROOT / "monitoring" / "alerts.yml"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)

# --- /healthz ---------------------------------------------------------------------


def _health(last_sync: datetime | None, failures: int = 0) -> tuple[int, dict[str, Any]]:
    return health(SyncHealth(last_sync, failures, HOUR, brake_engaged=False), NOW)


def test_healthz_is_503_until_the_first_successful_sync_and_says_why() -> None:
    status, body = _health(None, failures=2)
    assert status == 503
    assert (body["status"], body["reason"]) == (
        "starting",
        "no billing sync has succeeded yet (2 failed so far)",
    )


def test_healthz_is_503_once_syncs_are_stale_and_200_while_they_are_fresh() -> None:
    assert _health(NOW - 3 * HOUR)[0] == 200
    assert _health(NOW - 3.5 * HOUR)[0] == 200
    status, body = _health(NOW - 4 * HOUR, failures=4)
    assert status == 503
    assert body["status"] == "stale"
    assert body["reason"] == (
        "the last successful billing sync was 14400 s ago, over the limit of 12600 s"
    )
    assert (body["sync_failures"], body["last_sync"]) == (4, (NOW - 4 * HOUR).isoformat())


# --- /metrics ---------------------------------------------------------------------


def _queue(sessions: sessionmaker[Session], name: str, due: datetime, status: str) -> None:
    with sessions.begin() as session:
        session.add(
            ScheduledAction(
                account_id="a1",
                kind="playbook",
                name=name,
                status=ActionStatus(status),
                due_at=due,
                created_at=due,
                updated_at=due,
            )
        )


def _exposition(app: App, *, last_sync: datetime | None = NOW, failures: int = 0) -> str:
    collector = LapseCollector(
        app.sessions, lambda: last_sync, sync_failures=lambda: failures, clock=lambda: NOW
    )
    return generate_latest(make_registry(collector)).decode()


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Parse an exposition with prometheus_client's own parser (it raises on bad text)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def test_every_state_and_every_phase_is_exported_even_at_zero(app: App) -> None:
    samples = _samples(_exposition(app))
    for state in State:
        assert _value(samples, "lapse_accounts", state=state.value) == 0
    for phase in PLAYBOOK_PHASES:
        assert _value(samples, "lapse_queue_depth", phase=phase.value) == 0
        assert _value(samples, "lapse_queue_oldest_age_seconds", phase=phase.value) == 0
    assert _value(samples, "lapse_safety_brake_engaged") == 0
    assert _value(samples, "lapse_notices_waiting") == 0
    assert _value(samples, "lapse_approvals_waiting") == 0
    assert _value(samples, "lapse_sync_failures_total") == 0


def test_the_queue_brake_notices_and_sync_failures_are_measured(app: App) -> None:
    _queue(app.sessions, "suspend", NOW - 2 * HOUR, "pending")
    _queue(app.sessions, "suspend", NOW - HOUR, "pending")
    _queue(app.sessions, "suspend", NOW - 5 * HOUR, "done")  # ran: not queued
    _queue(app.sessions, "delete", NOW + HOUR, "pending")  # queued, not due yet
    with app.sessions.begin() as session:
        session.add(
            Correspondence(
                account_id="a1",
                notice="reminder",
                recipient="a1@example.org",
                subject="s",
                message_id="<m1@example.org>",
                status=NoticeStatus.PENDING,
                transport="outbox",
                created_at=NOW,
                raw=b"",
            )
        )
        session.add(
            DaemonFlag(
                name="brake",
                value={"state": "engaged", "since": NOW.isoformat(), "reason": "r"},
                updated_at=NOW,
            )
        )
        waiting_delete = session.scalars(
            select(ScheduledAction.id).where(ScheduledAction.name == "delete")
        ).one()
        session.add(
            Approval(
                action_id=waiting_delete,
                account_id="a1",
                phase="delete",
                status=ApprovalStatus.WAITING,
                requested_at=NOW,
            )
        )

    samples = _samples(_exposition(app, failures=3))

    assert _value(samples, "lapse_queue_depth", phase="suspend") == 2
    assert _value(samples, "lapse_queue_oldest_age_seconds", phase="suspend") == 7200
    assert _value(samples, "lapse_queue_depth", phase="delete") == 1
    assert _value(samples, "lapse_queue_oldest_age_seconds", phase="delete") == 0
    assert _value(samples, "lapse_playbook_phases", phase="suspend", status="done") == 1
    assert _value(samples, "lapse_notices_waiting") == 1
    assert _value(samples, "lapse_approvals_waiting") == 1
    assert _value(samples, "lapse_notices", kind="reminder", status="pending") == 1
    assert _value(samples, "lapse_safety_brake_engaged") == 1
    assert _value(samples, "lapse_sync_failures_total") == 3
    assert _value(samples, "lapse_last_successful_sync_timestamp_seconds") == NOW.timestamp()


def test_metric_names_follow_prometheus_conventions(app: App) -> None:
    """Counters end in _total and nothing else does; units come last; snake case."""
    for family in text_string_to_metric_families(_exposition(app)):
        assert re.fullmatch(r"lapse_[a-z_]+", family.name), family.name
        for sample in family.samples:
            assert sample.name.endswith("_total") == (family.type == "counter"), sample.name
        for unit in ("seconds", "bytes"):
            if unit in family.name:
                assert family.name.endswith(unit) or family.name.endswith(f"{unit}_total"), (
                    family.name
                )


# --- the dashboard and alert rules shipped -------------------------------------------


def exported_names(app: App) -> set[str]:
    """Every metric the daemon exports: the families it declares (those labelled by
    status have no sample before a row has the status) and the names of the samples
    (a counter's `_total`)."""
    families = list(text_string_to_metric_families(_exposition(app)))
    return {family.name for family in families} | {
        sample.name for family in families for sample in family.samples
    }


def dashboard_expressions(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression of every panel's targets."""
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def alert_problems(document: Any) -> list[str]:
    """Check the structure Prometheus requires of a rule file (and Lapse's own habits:
    a severity and a summary on every alert). Returns one line per problem."""
    problems = []
    groups = document.get("groups") if isinstance(document, dict) else None
    if not isinstance(groups, list) or not groups:
        return ["no 'groups' list"]
    for group in groups:
        if not isinstance(group.get("name"), str) or not isinstance(group.get("rules"), list):
            problems.append(f"group {group!r}: needs 'name' and a 'rules' list")
            continue
        for rule in group["rules"]:
            name = rule.get("alert", "?")
            unknown = set(rule) - {"alert", "expr", "for", "labels", "annotations"}
            if unknown:
                problems.append(f"{name}: unknown keys {sorted(unknown)}")
            if not isinstance(rule.get("alert"), str) or not isinstance(rule.get("expr"), str):
                problems.append(f"{name}: needs 'alert' and 'expr' strings")
            if "for" in rule and not re.fullmatch(r"\d+[smhdw]", str(rule["for"])):
                problems.append(f"{name}: 'for' is not a duration: {rule['for']!r}")
            if rule.get("labels", {}).get("severity") not in ("critical", "warning", "info"):
                problems.append(f"{name}: needs a severity label")
            if not rule.get("annotations", {}).get("summary"):
                problems.append(f"{name}: needs a summary annotation")
    return problems


def alert_expressions(document: dict[str, Any]) -> list[str]:
    return [rule["expr"] for group in document["groups"] for rule in group["rules"]]


def unknown_names(expressions: list[str], exported: set[str]) -> set[str]:
    """The lapse_* names the expressions use that the daemon does not export."""
    used = {name for expr in expressions for name in re.findall(r"\blapse_[a-z_]+\b", expr)}
    return used - exported


def test_the_dashboard_uses_only_exported_metrics(app: App) -> None:
    expressions = dashboard_expressions(json.loads(DASHBOARD.read_text()))
    assert expressions
    assert unknown_names(expressions, exported_names(app)) == set()


def test_the_alert_rules_are_well_formed_and_use_only_exported_metrics(app: App) -> None:
    rules = yaml.safe_load(ALERTS.read_text())
    assert alert_problems(rules) == []
    assert unknown_names(alert_expressions(rules), exported_names(app)) == set()


def test_the_checks_catch_a_renamed_metric_and_a_malformed_rule(app: App) -> None:
    """The two checks above can fail: a name the daemon dropped, a rule missing parts."""
    assert unknown_names(["rate(lapse_actions_total[5m])"], exported_names(app)) == {
        "lapse_actions_total"
    }
    broken = {"groups": [{"name": "g", "rules": [{"alert": "A", "for": "soon", "exp": "1"}]}]}
    assert alert_problems(broken) == [
        "A: unknown keys ['exp']",
        "A: needs 'alert' and 'expr' strings",
        "A: 'for' is not a duration: 'soon'",
        "A: needs a severity label",
        "A: needs a summary annotation",
    ]
