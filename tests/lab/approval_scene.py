"""A real app whose one account's site is a local directory run through the demo
playbook, backed up to a local store, with notices in an outbox: for the approval
gate and the console."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from pathlib import Path
from typing import Any

from daemon.config.load import validate_config
from daemon.config.schema import ALL_WEEKDAYS
from daemon.domain.clock import VirtualClock
from daemon.runtime.app import App, build_app
from tests.lab.engine_helpers import account, run_days

# Due 28 days before the first sync: a reminder, the final notice three days later.
T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def write_shop(tmp_path: Path) -> None:
    """Write acct-1's site (tmp_path/www/site, shop.example, on host 'here') and the
    billing file where it owes 120 EUR, due 28 days before T0."""
    site = tmp_path / "www" / "site"
    site.mkdir(parents=True)
    (site / "index.html").write_text("<h1>Shop</h1>\n")
    client = account("acct-1", T0 - 28 * DAY)
    client["services"] = [
        {"host": "here", "system_user": "shop", "docroot": str(site), "domains": ["shop.example"]}
    ]
    (tmp_path / "billing.json").write_text(json.dumps({"accounts": [client]}))


def approval_config(tmp_path: Path, state_url: str, **extra: Any) -> dict[str, Any]:
    """The raw config: one account, 'acct-1' (120 EUR, shop.example), on a local host;
    `extra` is merged into [policy.default] (e.g. approve = ["delete"])."""
    write_shop(tmp_path)
    return {
        "state": {"url": state_url},
        "billing": {"type": "file", "path": str(tmp_path / "billing.json")},
        "backup": {"store": {"type": "local", "path": str(tmp_path / "backups")}},
        "hosts": {
            "here": {
                "transport": "local",
                "playbook": "demo",
                "allowed_roots": [str(tmp_path / "www")],
            }
        },
        "notices": {"notifier": {"type": "outbox", "path": str(tmp_path / "outbox")}},
        "policy": {
            "default": {"quiet_hours": "", "contact_days": list(ALL_WEEKDAYS)} | extra,
        },
    }


def approval_app(tmp_path: Path, state_url: str, clock: VirtualClock, **extra: Any) -> App:
    """The app of `approval_config`, on `clock`."""
    raw = approval_config(tmp_path, state_url, **extra)
    return build_app(validate_config(raw, source="test", base_dir=tmp_path), clock)


def to_deletion(app: App, clock: VirtualClock) -> None:
    """Carry acct-1 through reminder, final notice and suspension (the suspend phase run)
    to its deletion, queued."""
    app.lifecycle.sync()
    run_days(app, clock, 12)
    app.runner.run_pending()
    run_days(app, clock, 40)


def client_notices(tmp_path: Path) -> list[str]:
    """The X-Lapse-Notice header of every notice in the outbox, in the order written."""
    outbox = tmp_path / "outbox"
    files = sorted(outbox.glob("*.eml"), key=lambda path: path.stat().st_mtime_ns)
    return [str(message_from_bytes(path.read_bytes())["X-Lapse-Notice"]) for path in files]
