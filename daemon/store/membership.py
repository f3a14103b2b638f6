"""`column IN (values)` for many values, written as the state database reads it fastest.

SQLAlchemy writes `IN` with one placeholder per value, so a sync batch of a thousand
account ids is a statement of a thousand placeholders, its text different at every
length. PostgreSQL's driver (psycopg) converts such a statement from its Python text
at every execution (it caches only short statements): at 200,000 accounts that was
about a thirtieth of a first sync and a twentieth of the daily and idle syncs on
PostgreSQL. There the condition is written `column = ANY(:values)` instead: one
array parameter, one statement text, which PostgreSQL plans as it plans `IN` (the
same index scans). Other databases keep `IN`.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, String, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session


def one_of(
    session: Session, column: ColumnElement[str], values: Sequence[str]
) -> ColumnElement[bool]:
    """Return the condition that the text `column` equals one of `values`, for the
    database `session` is bound to."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(String)))
    return column.in_(values)
