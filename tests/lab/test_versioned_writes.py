"""`write_changed` on PostgreSQL: the changed rows of a versioned table in one
executemany per set of changed columns, each row's version checked as the ORM checks
it, and nothing left for the flush; a row another writer changed since it was read
fails the whole write (StaleDataError), as the ORM's flush would. On SQLite it leaves
the rows to the ORM's flush."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import JSON, Engine, Integer, String, event, select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.orm.exc import StaleDataError

from daemon.store.db import open_engine
from daemon.store.versioned_writes import write_changed


class _Base(DeclarativeBase):
    pass


class Probe(_Base):
    __tablename__ = "versioned_probe"

    key: Mapped[str] = mapped_column("id", String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    count: Mapped[int] = mapped_column(Integer)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, deferred=True)
    version: Mapped[int] = mapped_column(Integer)

    __mapper_args__ = {"version_id_col": version}


class Plain(_Base):
    """A table without a version counter: not for write_changed."""

    __tablename__ = "plain_probe"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))


def _filled(url: str) -> Engine:
    engine = open_engine(url)
    _Base.metadata.create_all(engine)
    with Session(engine) as session, session.begin():
        session.add_all(
            Probe(key=f"p{number:03d}", name="start", count=0, data={"n": number})
            for number in range(300)
        )
        session.add(Plain(id="x", name="start"))
    return engine


@pytest.fixture
def engine(postgres: Any) -> Iterator[Engine]:
    engine = _filled(postgres.create_database(f"lapse_{uuid.uuid4().hex[:12]}"))
    try:
        yield engine
    finally:
        _Base.metadata.drop_all(engine)
        engine.dispose()


def _record_updates(engine: Engine) -> list[tuple[str, bool]]:
    """Start recording each UPDATE statement `engine` runs: its table's name and whether
    it was an executemany (for the engine's life)."""
    seen: list[tuple[str, bool]] = []

    def note(*args: Any) -> None:
        statement, executemany = args[2], args[5]
        if statement.lstrip().upper().startswith("UPDATE"):
            seen.append((statement.split()[1].strip('"'), executemany))

    event.listen(engine, "before_cursor_execute", note)
    return seen


@pytest.fixture
def updates(engine: Engine) -> list[tuple[str, bool]]:
    """The UPDATE statements the PostgreSQL engine runs (see _record_updates)."""
    return _record_updates(engine)


def _all(engine: Engine) -> dict[str, tuple[str, int, dict[str, Any], int]]:
    with Session(engine) as session:
        rows = session.scalars(select(Probe))
        return {row.key: (row.name, row.count, row.data, row.version) for row in rows}


def test_changed_rows_go_in_one_statement_per_shape_and_read_back(
    engine: Engine, updates: list[tuple[str, bool]]
) -> None:
    with Session(engine) as session, session.begin():
        probes = {probe.key: probe for probe in session.scalars(select(Probe))}
        for number in range(0, 100):  # the name alone
            probes[f"p{number:03d}"].name = f"renamed {number}"
        for number in range(100, 200):  # the name and the count
            probe = probes[f"p{number:03d}"]
            probe.name, probe.count = "both", number
        for number in range(200, 220):  # the deferred column, never loaded
            probes[f"p{number:03d}"].data = {"new": number}
        for number in range(220, 250):  # set to what it was: no change
            probes[f"p{number:03d}"].name = "start"
        session.add(Probe(key="fresh", name="new", count=1, data={}))  # left to the flush

        assert write_changed(session, probes.values()) == 220
        assert updates == [("versioned_probe", True)] * 3
        updates.clear()
        session.flush()  # inserts the new one, writes nothing of the others again
        assert updates == []
        assert probes["p000"].version == 2 and probes["p230"].version == 1

    stored = _all(engine)
    assert stored["p007"] == ("renamed 7", 0, {"n": 7}, 2)
    assert stored["p150"] == ("both", 150, {"n": 150}, 2)
    assert stored["p210"] == ("start", 0, {"new": 210}, 2)
    assert stored["p230"] == ("start", 0, {"n": 230}, 1)
    assert stored["p299"] == ("start", 0, {"n": 299}, 1)
    assert stored["fresh"] == ("new", 1, {}, 1)


def test_a_row_another_writer_changed_since_it_was_read_fails_the_whole_write(
    engine: Engine,
) -> None:
    with Session(engine) as session:
        probes = list(session.scalars(select(Probe).where(Probe.key < "p010")))
        with engine.begin() as other:  # another writer, through the ORM's own rule
            other.execute(
                update(Probe.__table__)  # type: ignore[arg-type]
                .where(Probe.__table__.c.id == "p004")
                .values(name="theirs", version=Probe.__table__.c.version + 1)
            )
        for probe in probes:
            probe.name = "mine"
        with pytest.raises(StaleDataError, match="UPDATE of 10 rows of versioned_probe matched 9"):
            write_changed(session, probes)
        session.rollback()
    stored = _all(engine)
    assert stored["p004"] == ("theirs", 0, {"n": 4}, 2)
    assert {stored[f"p{number:03d}"][0] for number in range(10) if number != 4} == {"start"}


def test_objects_it_cannot_write_are_refused_and_others_left_to_the_flush(
    engine: Engine, updates: list[tuple[str, bool]]
) -> None:
    with Session(engine) as session, session.begin():
        plain = session.get(Plain, "x")
        assert plain is not None
        plain.name = "changed"
        with pytest.raises(TypeError, match="no table with a version counter"):
            write_changed(session, [plain])
        probe = session.get(Probe, "p001")
        assert probe is not None
        probe.key = "p999"
        with pytest.raises(ValueError, match="primary key"):
            write_changed(session, [probe])
        session.expunge(probe)
        with Session(engine) as elsewhere:  # another session's object: not this one's
            theirs = elsewhere.get(Probe, "p002")
            assert theirs is not None
            theirs.name = "theirs"
            assert write_changed(session, [theirs]) == 0
    assert updates == [("plain_probe", False)]  # the flush wrote the plain row


def test_on_sqlite_the_rows_are_left_to_the_orms_flush(tmp_path: Path) -> None:
    engine = _filled(f"sqlite:///{tmp_path / 'state.db'}")
    statements = _record_updates(engine)
    try:
        with Session(engine) as session, session.begin():
            probes = list(session.scalars(select(Probe).where(Probe.key < "p005")))
            for probe in probes:
                probe.name = "mine"
            assert write_changed(session, probes) == 0
            assert statements == []
            session.flush()  # the ORM's: a statement a row, each version checked
            assert statements == [("versioned_probe", False)] * 5
        assert {row[0] for key, row in _all(engine).items() if key < "p005"} == {"mine"}
    finally:
        engine.dispose()
