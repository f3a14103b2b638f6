"""The text of the state database's JSON columns: orjson's where it is plain ASCII.

Every account row holds its billing snapshot as JSON, and every event, audit entry
and notice record holds details: a first sync of a large customer base writes
hundreds of thousands of them, and the standard library's encoder took about a
twenty-fifth of its time. orjson writes the same values several times faster.

What is stored keeps its meaning. The standard library writes, as before, text
that is not ASCII (kept as `\\u` escapes, so a PostgreSQL database whose encoding
is not UTF-8 stores it as before) and whatever orjson refuses or would write where
the standard library refuses it (integers beyond 64 bits; datetimes and
dataclasses, which are then refused as before). Lapse stores no other type the two
treat differently (a UUID, an Enum that is neither a str nor an int). A float that
is not a number is stored as null (the standard library wrote NaN, which is not
JSON and which PostgreSQL refuses); reading back, text orjson cannot parse (such a
NaN written before) is read by the standard library. Nothing hashes a column's
text: the audit chain and the snapshot digest hash their own canonical encodings.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

# Whatever orjson would write in its own way goes to the standard library instead.
_AS_BEFORE = (
    orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
)


def _refuse(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is written by the standard library")


def dumps(value: Any) -> str:
    """Return the JSON text stored for `value`.

    Raises TypeError (or ValueError) where `json.dumps` does: a value JSON cannot hold.
    """
    try:
        text = orjson.dumps(value, default=_refuse, option=_AS_BEFORE).decode()
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(value)
    return text if text.isascii() else json.dumps(value)


def loads(text: str | bytes) -> Any:
    """Return the value stored as JSON `text`. Raises ValueError for text that is not JSON."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)
