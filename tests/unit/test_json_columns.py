"""The JSON columns' text: orjson's for plain ASCII values, the standard library's for
everything it would write otherwise; read back, every value is what was stored."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

import pytest

from daemon.store import json_columns


class _Stage(StrEnum):
    OVERDUE = "overdue"


class _Name(str):
    pass


@dataclass
class _Point:
    x: int


_VALUES = [
    {"account": "a-1", "lines": [{"amount": "12.50", "qty": 2}], "paid": None, "exempt": False},
    {"ratio": 0.1, "large": 1e16, "small": 1e-7, "negative": -0.0},
    {"text": 'quote " backslash \\ tab \t newline \n del \x7f nul \x00'},
    {"name": "Müller", "city": "東京", "line": "a\u2028b"},
    {1: "an int key", "nested": {"2": [1, [2, [3]]]}},
    {"huge": 2**70, "stage": _Stage.OVERDUE, "subclass": _Name("kept")},
    [],
    "a bare string",
]


@pytest.mark.parametrize("value", _VALUES)
def test_a_value_reads_back_as_the_standard_library_reads_it(value: object) -> None:
    assert json_columns.loads(json_columns.dumps(value)) == json.loads(json.dumps(value))


@pytest.mark.parametrize("value", _VALUES)
def test_the_stored_text_is_ascii(value: object) -> None:
    # A PostgreSQL database whose encoding is not UTF-8 stores such text unchanged.
    assert json_columns.dumps(value).isascii()


def test_text_that_is_not_ascii_is_written_as_before() -> None:
    value = {"name": "Müller"}
    assert json_columns.dumps(value) == json.dumps(value) == '{"name": "M\\u00fcller"}'


@pytest.mark.parametrize(
    "value", [{"at": datetime(2026, 12, 3, tzinfo=UTC)}, {"point": _Point(1)}, {"set": {1}}]
)
def test_what_the_standard_library_refuses_is_refused(value: object) -> None:
    with pytest.raises(TypeError):
        json_columns.dumps(value)


def test_a_nan_written_before_reads_back() -> None:
    back = json_columns.loads('{"seconds": NaN}')
    assert back["seconds"] != back["seconds"]


def test_text_that_is_not_json_is_refused() -> None:
    with pytest.raises(ValueError):
        json_columns.loads("{not json")
