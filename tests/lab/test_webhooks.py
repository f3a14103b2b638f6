"""Payment webhooks end to end: a suspended site, a signed payment event, the site back."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from daemon.config.schema import WebhooksConfig
from daemon.config.secrets import SecretRef
from daemon.runtime.http.server import LapseHTTP
from daemon.runtime.http.signatures import sign_hmac, sign_stripe
from daemon.runtime.scheduler import LapseScheduler
from daemon.runtime.service import http_listener
from daemon.store.models import WebhookEvent
from tests.lab.engine_helpers import run_days
from tests.lab.playbook_scene import ORIGINAL_PAGE, Scene

SECRET = "whsec_test_secret"


@pytest.fixture
def live(scene: Scene, tmp_path: Path) -> Iterator[tuple[Scene, LapseHTTP]]:
    """The scene suspended, then run by a real-time scheduler with the HTTP listener."""
    run_days(scene.app, scene.clock, 40)
    scene.app.runner.run_pending()
    assert scene.get().status_code == 503
    secret_file = tmp_path / "hmac-secret"
    secret_file.write_text(SECRET)
    hooks = WebhooksConfig(
        stripe_secret=SecretRef(file=secret_file), hmac_secret=SecretRef(file=secret_file)
    )
    object.__setattr__(scene.app.config, "webhooks", hooks)
    scene.clock.set(datetime.now(UTC))  # from here on, the scheduler runs in real time
    scheduler = LapseScheduler(
        scene.app.engine, scene.app.lifecycle, timedelta(hours=1), scene.app.runner
    )
    scheduler.start(sync_now=False)
    scheduler.last_sync = scene.clock()  # the scene's syncs: /healthz is 503 before one
    listener = http_listener(scene.app, scheduler, "127.0.0.1:0")
    listener.start()
    time.sleep(1)  # let the start-up wake-ups (a removal warning is due) settle
    yield scene, listener
    listener.stop()
    scheduler.shutdown()


def _generic(
    listener: LapseHTTP, event: Mapping[str, object], secret: str = SECRET
) -> httpx.Response:
    body = json.dumps(event).encode()
    return httpx.post(
        f"http://127.0.0.1:{listener.port}/webhooks/generic",
        content=body,
        headers={"X-Lapse-Signature": sign_hmac(body, secret)},
        timeout=10,
    )


def _wait_for_page(scene: Scene, seconds: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if scene.get().text == ORIGINAL_PAGE:
            return time.monotonic() - start
        time.sleep(0.1)
    raise AssertionError(f"the site did not come back within {seconds} s")


def test_a_signed_payment_event_brings_the_site_back(live: tuple[Scene, LapseHTTP]) -> None:
    scene, listener = live
    scene.pay()
    event = {"id": "evt-1", "account_id": scene.account_id, "at": datetime.now(UTC).isoformat()}

    answer = _generic(listener, event)

    assert answer.status_code == 202
    assert _wait_for_page(scene, 30) < 30
    assert not scene.locked()
    # The same event again changes nothing.
    assert _generic(listener, event).text == "duplicate event ignored\n"
    with scene.app.sessions() as session:
        assert session.scalar(select(func.count()).select_from(WebhookEvent)) == 1


def test_bad_signatures_and_stale_events_get_401(live: tuple[Scene, LapseHTTP]) -> None:
    scene, listener = live
    scene.pay()
    now = datetime.now(UTC)
    assert (
        _generic(listener, {"id": "e2", "account_id": scene.account_id}, "wrong").status_code == 401
    )
    stale = {
        "id": "e3",
        "account_id": scene.account_id,
        "at": (now - timedelta(hours=1)).isoformat(),
    }
    assert _generic(listener, stale).status_code == 401
    body = json.dumps(
        {"id": "evt_1", "type": "invoice.paid", "data": {"object": {"customer": scene.account_id}}}
    ).encode()
    url = f"http://127.0.0.1:{listener.port}/webhooks/stripe"
    old = sign_stripe(body, SECRET, int(now.timestamp()) - 3600)
    assert httpx.post(url, content=body, headers={"Stripe-Signature": old}).status_code == 401
    forged = sign_stripe(body, "whsec_other", int(now.timestamp()))
    assert httpx.post(url, content=body, headers={"Stripe-Signature": forged}).status_code == 401
    time.sleep(1)
    assert scene.get().status_code == 503  # nothing acted on
    good = sign_stripe(body, SECRET, int(now.timestamp()))
    assert httpx.post(url, content=body, headers={"Stripe-Signature": good}).status_code == 202
    _wait_for_page(scene, 30)


def test_health_and_metrics(live: tuple[Scene, LapseHTTP]) -> None:
    _scene, listener = live
    health = httpx.get(f"http://127.0.0.1:{listener.port}/healthz", timeout=10)
    assert health.status_code == 200 and health.json()["brake"] is False
    metrics = httpx.get(f"http://127.0.0.1:{listener.port}/metrics", timeout=10).text
    assert 'lapse_accounts{state="removal-warned"} 1.0' in metrics  # a warning was due
    assert 'lapse_playbook_phases{phase="suspend",status="done"} 1.0' in metrics
    assert 'lapse_backups{status="verified"} 1.0' in metrics
    assert 'lapse_notices{kind="final",status="sent"} 1.0' in metrics
