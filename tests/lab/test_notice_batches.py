"""The outbox's notices are delivered a batch at a time, and marked sent only once their
files are durable (SQLite and PostgreSQL state databases, a real outbox directory).

A batch's files are written, flushed and put in place together; a flush that fails
leaves every notice of the batch pending, with no file and no temporary file behind,
and the next round delivers each once. Files put in place but not yet recorded (a crash
between the two) are found by their Message-ID and not written twice.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from daemon.domain.clock import VirtualClock
from daemon.domain.states import NoticeStatus
from daemon.notices.delivery import outbox
from daemon.notices.delivery.base import TemporaryDeliveryError
from daemon.runtime.app import App
from daemon.store.models import Correspondence
from tests.lab.engine_helpers import account, make_app, write_billing

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def owing_app(tmp_path: Path, state_url: str, accounts: int) -> App:
    """An app whose `accounts` accounts are each due a reminder at the first sync."""
    write_billing(
        tmp_path / "billing.json", [account(f"c{n}", T0 - 4 * DAY) for n in range(accounts)]
    )
    return make_app(tmp_path, state_url, VirtualClock(T0))


def statuses(app: App) -> list[NoticeStatus]:
    with app.sessions() as session:
        return list(session.scalars(select(Correspondence.status).order_by(Correspondence.id)))


def outbox_files(tmp_path: Path) -> list[str]:
    """The outbox's file names, temporary files included."""
    return sorted(path.name for path in (tmp_path / "outbox").iterdir())


def test_notices_beyond_one_batch_are_each_delivered_once_as_stored(
    tmp_path: Path, state_url: str
) -> None:
    app = owing_app(tmp_path, state_url, 5)
    app.notices.delivery.batch_size = 2  # three batches: two, two and one

    app.lifecycle.sync()

    assert statuses(app) == [NoticeStatus.SENT] * 5
    with app.sessions() as session:
        letters = session.scalars(select(Correspondence)).all()
        stored = {f"{letter.message_id.strip('<>')}.eml": letter.raw for letter in letters}
    assert outbox_files(tmp_path) == sorted(stored)
    for name, raw in stored.items():
        assert (tmp_path / "outbox" / name).read_bytes() == raw
    assert app.notices.deliver_pending() == 0


def test_a_batch_whose_files_cannot_be_flushed_stays_pending_then_goes_once(
    tmp_path: Path, state_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = owing_app(tmp_path, state_url, 3)

    def failing_fsync(_fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    app.lifecycle.sync()

    assert statuses(app) == [NoticeStatus.PENDING] * 3
    assert outbox_files(tmp_path) == []  # neither a file nor a temporary one
    monkeypatch.undo()
    assert app.notices.deliver_pending() == 3
    assert statuses(app) == [NoticeStatus.SENT] * 3
    assert len(outbox_files(tmp_path)) == 3


class _LostAfterWriting(outbox.OutboxDelivery):
    """Puts the batch's files in place, then fails before the desk can record them: a
    crash in the window between the two."""

    @contextmanager
    def together(self) -> Iterator[None]:
        with super().together():
            yield
        raise TemporaryDeliveryError("the daemon died after writing the batch")


def test_files_written_but_not_recorded_are_recorded_and_not_written_again(
    tmp_path: Path, state_url: str
) -> None:
    app = owing_app(tmp_path, state_url, 3)
    app.notices.delivery = _LostAfterWriting(tmp_path / "outbox")

    app.lifecycle.sync()

    assert statuses(app) == [NoticeStatus.PENDING] * 3
    written = {name: os.stat(tmp_path / "outbox" / name).st_ino for name in outbox_files(tmp_path)}
    assert len(written) == 3
    restarted = make_app(tmp_path, state_url, VirtualClock(T0))
    assert restarted.notices.deliver_pending() == 3
    assert statuses(restarted) == [NoticeStatus.SENT] * 3
    after = {name: os.stat(tmp_path / "outbox" / name).st_ino for name in outbox_files(tmp_path)}
    assert after == written  # the same three files, none written again
