"""`one_of` on SQLite and PostgreSQL: exactly the rows whose value is listed, for an
empty list, a long one and values that mean something to SQL; on PostgreSQL the
driver is handed one statement text whatever the list's length."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, MetaData, String, Table, event, insert, select
from sqlalchemy.orm import Session

from daemon.store.db import open_engine
from daemon.store.membership import one_of

_TABLE = Table("membership_probe", MetaData(), Column("key", String(64), primary_key=True))
_KEYS = [f"k{number:05d}" for number in range(6000)] + ["it's", "a,b", "{x}", '"q"', "NULL"]


def test_one_of_selects_exactly_the_listed_rows(state_url: str) -> None:
    engine = open_engine(state_url)
    _TABLE.metadata.create_all(engine)
    executed: set[str] = set()

    def note(_connection: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        executed.add(statement)

    try:
        with Session(engine) as session, session.begin():
            session.execute(insert(_TABLE), [{"key": key} for key in _KEYS])
            for wanted in ([], ["k00007"], _KEYS[::2], ["it's", "a,b", "{x}", '"q"', "NULL", "no"]):
                query = select(_TABLE.c.key).where(one_of(session, _TABLE.c.key, wanted))
                assert set(session.scalars(query)) == set(wanted) & set(_KEYS)
            event.listen(engine, "before_cursor_execute", note)
            for length in (1, 2, 500):
                wanted = _KEYS[:length]
                session.execute(select(_TABLE.c.key).where(one_of(session, _TABLE.c.key, wanted)))
    finally:
        if event.contains(engine, "before_cursor_execute", note):
            event.remove(engine, "before_cursor_execute", note)
        _TABLE.metadata.drop_all(engine)
        engine.dispose()
    assert len(executed) == (1 if engine.dialect.name == "postgresql" else 3)
