"""The backups table read with the standard library (daemon.backup.sqlite_rows): the same
views and the same choice as through SQLAlchemy, read-only, and refusing what it cannot
read rather than guessing."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from daemon.backup.choice import chosen
from daemon.backup.errors import BackupError
from daemon.backup.head_start import first_archive
from daemon.backup.service import BackupService
from daemon.backup.sqlite_rows import SqliteBackups, sqlite_file
from daemon.backup.stores import deferred_store
from daemon.backup.views import BackupView
from daemon.config import load_embedded_config
from daemon.domain.clock import system_clock
from daemon.domain.states import BackupStatus
from daemon.store.db import open_engine, session_factory
from daemon.store.migrate import migrate
from daemon.store.models import Backup
from daemon.transport import Transports

T0 = datetime(2026, 3, 29, 0, 59, 59, 123456, tzinfo=UTC)
HOUR = timedelta(hours=1)


def _manifest(backup_id: str, account: str, verification: bool = True) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "backup_id": backup_id,
        "account_id": account,
        "reason": "manual ops",
        "created_at": T0.isoformat(),
        "completed_at": T0.isoformat(),
        "hosts": ["web1"],
        "objects": [
            {
                "name": "files-1.tar.zst",
                "kind": "files",
                "source": "/srv/www/site ü",
                "compression": "zstd",
                "size": 123,
                "sha256": "ab" * 32,
                "host": "web1",
                "warnings": ["file changed as we read it"],
            }
        ],
    }
    if verification:
        manifest["verification"] = {"at": T0.isoformat(), "ok": True, "objects": {}}
    return manifest


@dataclass
class _State:
    path: Path
    sessions: sessionmaker[Session]
    service: BackupService


@pytest.fixture
def state(tmp_path: Path) -> Iterator[_State]:
    """A migrated SQLite state database holding backups of every shape: each status, null
    columns, a manifest with and without its verification, two made at the same instant."""
    path = tmp_path / "state.db"
    engine = open_engine(f"sqlite:///{path}")
    migrate(engine)
    sessions = session_factory(engine)
    rows = [
        ("b1", "acct-1", BackupStatus.VERIFIED, T0, _manifest("b1", "acct-1"), None),
        # Made at the same instant as b1: the id orders them.
        ("b0", "acct-1", BackupStatus.VERIFIED, T0, _manifest("b0", "acct-1"), None),
        ("b2", "acct-1", BackupStatus.CORRUPT, T0 + HOUR, _manifest("b2", "acct-1"), "bad"),
        ("b3", "acct-1", BackupStatus.RUNNING, T0 + timedelta(hours=2), None, None),
        ("b4", "acct-1", BackupStatus.FAILED, T0 + timedelta(hours=3), None, "host said no"),
        ("c1", "acct-2", BackupStatus.COMPLETED, T0, _manifest("c1", "acct-2", False), None),
    ]
    with sessions.begin() as session:
        for backup_id, account, status, created, manifest, error in rows:
            done = status != BackupStatus.RUNNING
            session.add(
                Backup(
                    id=backup_id,
                    account_id=account,
                    store="local",
                    location=f"/backups/{account}/{backup_id}",
                    status=status,
                    reason="manual ops",
                    created_at=created,
                    completed_at=created + timedelta(minutes=5) if done else None,
                    verified_at=created + timedelta(minutes=9)
                    if status == BackupStatus.VERIFIED
                    else None,
                    size_bytes=123 if manifest else None,
                    manifest=manifest,
                    error=error,
                )
            )
    config = load_embedded_config(tmp_path / "data")
    service = BackupService(
        sessions,
        config.backup,
        {},
        deferred_store(config.backup.store),
        Transports({}),
        system_clock,
    )
    yield _State(path, sessions, service)
    engine.dispose()


def test_the_standard_library_reads_the_views_sqlalchemy_reads(state: _State) -> None:
    rows = SqliteBackups(state.path)
    for account in ("acct-1", "acct-2", "acct-none"):
        assert rows.list(account) == state.service.list(account)
    listed = rows.list("acct-1")
    assert [backup.id for backup in listed] == ["b4", "b3", "b2", "b1", "b0"]
    for backup_id in ("b0", "b1", "b2", "b3", "b4", "c1"):
        assert rows.get(backup_id) == state.service.get(backup_id)
    b1 = rows.get("b1")
    assert b1.created_at == T0
    assert b1.manifest is not None and b1.manifest.objects[0].source == "/srv/www/site ü"
    assert b1.verification == {"at": T0.isoformat(), "ok": True, "objects": {}}


def _outcome(pick: Any) -> BackupView | tuple[type[BaseException], str]:
    try:
        return pick()  # type: ignore[no-any-return]
    except BackupError as error:
        return type(error), str(error)


@pytest.mark.parametrize(
    ("account", "backup_id", "expected"),
    [
        ("acct-1", "latest", "b1"),  # the newest verified: b2 is corrupt, b3 and b4 unfinished
        ("acct-1", "b2", "b2"),
        ("acct-1", "b0", "b0"),
        ("acct-1", "c1", "belongs to another account"),
        ("acct-1", "nope", "no backup 'nope'"),
        ("acct-2", "latest", "no verified backup"),
        ("acct-none", "latest", "no verified backup"),
    ],
)
def test_the_restore_rule_picks_the_same_backup_through_both(
    state: _State, account: str, backup_id: str, expected: str
) -> None:
    ours = _outcome(lambda: chosen(SqliteBackups(state.path), account, backup_id))
    assert ours == _outcome(lambda: state.service.chosen(account, backup_id))
    if isinstance(ours, BackupView):
        assert ours.id == expected
    else:
        assert expected in ours[1]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:////var/lib/lapse/state.db", "/var/lib/lapse/state.db"),
        ("sqlite:///state.db", "RELATIVE/state.db"),
        ("sqlite://", None),
        ("sqlite:///:memory:", None),
        ("sqlite:////var/lib/lapse/state.db?timeout=5", None),
        ("sqlite:////var/lib/lapse/st%61te.db", None),
        ("sqlite+pysqlite:////var/lib/lapse/state.db", None),
        ("postgresql+psycopg://lapse@db.internal/lapse", None),
    ],
)
def test_only_a_plain_sqlite_url_is_read_without_sqlalchemy(
    url: str, expected: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    found = sqlite_file(url)
    if expected is None:
        assert found is None
    else:
        assert found == Path(expected.replace("RELATIVE", str(tmp_path)))


def test_a_missing_file_is_an_error_and_is_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "none" / "state.db"
    with pytest.raises(sqlite3.Error):
        SqliteBackups(missing).list("acct-1")
    assert not missing.exists()
    assert not missing.parent.exists()


def test_a_database_lapse_never_migrated_is_an_error(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    sqlite3.connect(other).close()
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        SqliteBackups(other).get("b1")


def test_the_reader_writes_nothing(state: _State) -> None:
    before = state.path.read_bytes()
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        SqliteBackups(state.path)._select("DELETE FROM backups WHERE id = ?", "b1")
    assert state.path.read_bytes() == before
    assert len(SqliteBackups(state.path).list("acct-1")) == 5


@pytest.mark.parametrize(
    ("column", "value", "error"),
    [
        ("status", "'lost'", ValueError),
        ("created_at", "'yesterday'", ValueError),
        ("manifest", "'{\"objects\": 3}'", (KeyError, TypeError)),
        ("manifest", "'not json'", ValueError),
    ],
)
def test_a_row_out_of_shape_is_refused_not_guessed(
    state: _State, column: str, value: str, error: Any
) -> None:
    with state.sessions.begin() as session:
        session.execute(text(f"UPDATE backups SET {column} = {value} WHERE id = 'b1'"))
    with pytest.raises(error):
        SqliteBackups(state.path).list("acct-1")


def test_a_writer_in_the_middle_of_its_transaction_does_not_hold_the_reader(
    state: _State,
) -> None:
    """The daemon may be writing while an operator restores: the state database is in WAL
    mode, where a reader sees the last committed rows at once."""
    with state.sessions.begin() as session:
        session.execute(text("DELETE FROM backups WHERE id = 'b4'"))
        session.flush()
        # Uncommitted: the reader still sees b4, and is not made to wait.
        assert next(backup.id for backup in SqliteBackups(state.path).list("acct-1")) == "b4"
    assert next(backup.id for backup in SqliteBackups(state.path).list("acct-1")) == "b3"


def test_the_head_start_answers_from_sqlite_without_importing_sqlalchemy(
    state: _State, tmp_path: Path
) -> None:
    """The point of the reader: `lapse restore`'s child answers before SQLAlchemy could even
    be imported, with the archive the restore's own lookup arrives at."""
    script = f"""
import json, sys
from pathlib import Path
from daemon.backup.stores import deferred_store
from daemon.config import load_embedded_config
from daemon.config.schema import StateConfig
from daemon.runtime import restore_ahead
config = load_embedded_config(Path({str(tmp_path / "data")!r})).model_copy(
    update={{"state": StateConfig(url={f"sqlite:///{state.path}"!r})}}
)
store = deferred_store(config.backup.store)
first = restore_ahead._first_archive(config, store, "acct-1", "latest", None, True)
print(json.dumps({{"first": first and [first.host, first.key, first.list_key],
                  "sqlalchemy": "sqlalchemy" in sys.modules}}))
"""
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    expected = first_archive(state.service.chosen("acct-1", "latest"))
    assert expected is not None
    assert answer == {
        "first": [expected.host, expected.key, expected.list_key],
        "sqlalchemy": False,
    }
    assert expected.host == "web1" and expected.key.endswith("/b1/files-1.tar.zst")
