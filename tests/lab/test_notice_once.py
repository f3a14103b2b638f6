"""Two daemons deliver the same pending notices at the same moment: each is sent once.

Two apps on one lab PostgreSQL database (two engines, two notice desks: what two
daemons are) deliver in parallel through a slow mail server; each notice is locked
while it is delivered, so the other desk skips it and later finds it sent.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from daemon.domain.clock import VirtualClock
from daemon.domain.states import NoticeStatus
from daemon.notices.delivery.base import TemporaryDeliveryError
from daemon.store.models import Correspondence
from tests.lab.engine_helpers import account, make_app, write_billing
from tests.lab.services.postgres import PostgresServer


def test_two_desks_delivering_at_once_send_each_notice_once(
    tmp_path: Path, postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = postgres.create_database(f"lapse_{uuid.uuid4().hex[:12]}")
    now = datetime.now(UTC)
    write_billing(
        tmp_path / "billing.json", [account(f"c{n}", now - timedelta(days=4)) for n in range(6)]
    )
    clock = VirtualClock(now)
    first = make_app(tmp_path, url, clock, anytime=True)

    def away(_raw: bytes, _message_id: str) -> str:
        raise TemporaryDeliveryError("the mail server is away")

    # The notice desk hands over a stored notice's bytes (Delivery.deliver_stored).
    monkeypatch.setattr(first.notices.delivery, "deliver_stored", away)
    first.lifecycle.sync()  # a reminder for each, left pending
    monkeypatch.undo()
    second = make_app(tmp_path, url, clock, anytime=True)
    with first.sessions() as session:
        pending = session.scalars(
            select(Correspondence.message_id).where(Correspondence.status == NoticeStatus.PENDING)
        ).all()
    assert len(pending) == 6

    sent: list[str] = []
    lock = threading.Lock()

    def slow(_raw: bytes, message_id: str) -> str:
        time.sleep(0.3)  # a slow mail server: both desks are at it at once
        with lock:
            sent.append(message_id)
        return "250 queued"

    for app in (first, second):
        monkeypatch.setattr(app.notices.delivery, "deliver_stored", slow)
    threads = [threading.Thread(target=app.notices.deliver_pending) for app in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert Counter(sent) == Counter(pending)  # every notice once, none twice
    with first.sessions() as session:
        statuses = set(session.scalars(select(Correspondence.status)))
    assert statuses == {NoticeStatus.SENT}
