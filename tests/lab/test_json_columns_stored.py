"""The state database's JSON columns, on SQLite and PostgreSQL: the text stored is the
codec's (ASCII whatever the value holds), and each value reads back as written."""

from __future__ import annotations

import json

from sqlalchemy import JSON, Column, Integer, MetaData, Table, insert, select, text

from daemon.store.db import open_engine

_PLAIN = {"account": "a-1", "lines": [{"amount": "12.50", "qty": 2}], "ratio": 0.5}
_NOT_ASCII = {"name": "Jürgen Grüß", "city": "東京", "separator": "a\u2028b"}


def test_json_columns_store_the_codecs_text_and_read_back(state_url: str) -> None:
    engine = open_engine(state_url)
    table = Table(
        "json_probe", MetaData(), Column("id", Integer, primary_key=True), Column("v", JSON)
    )
    table.metadata.create_all(engine)
    try:
        with engine.begin() as connection:
            connection.execute(insert(table), [{"id": 1, "v": _PLAIN}, {"id": 2, "v": _NOT_ASCII}])
            stored: dict[int, str] = {
                key: value
                for key, value in connection.execute(
                    text("SELECT id, CAST(v AS TEXT) FROM json_probe")
                )
            }
            read = {key: value for key, value in connection.execute(select(table.c.id, table.c.v))}
        assert stored[1] == '{"account":"a-1","lines":[{"amount":"12.50","qty":2}],"ratio":0.5}'
        assert stored[2] == json.dumps(_NOT_ASCII)
        assert stored[2].isascii()
        assert read == {1: _PLAIN, 2: _NOT_ASCII}
    finally:
        table.metadata.drop_all(engine)
        engine.dispose()
