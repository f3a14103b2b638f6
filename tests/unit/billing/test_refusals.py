"""Hostile or runaway billing values are refused row by row, naming the field and the row,
and every other account is still read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from daemon.billing import fields
from daemon.billing import file as file_source
from daemon.billing.base import BillingError
from daemon.billing.dispatch import create_source
from daemon.billing.file import CELL_LIMIT
from daemon.config.schema import FileBilling
from daemon.domain.snapshot import SyncResult
from tests.unit.billing.helpers import flat_row, nested_account, write_csv

BAD_IDS = {
    "dot": ".",
    "dot-dot": "..",
    "leading dot": ".hidden",
    "leading dash": "-rf",
    "slash": "a/b",
    "dot-dot path": "../etc",
    "nul": "a\x00b",
    "newline": "a\nb",
    "tab": "a\tb",
    "escape": "a\x1b[2Jb",
    "over 64": "a" * 65,
    "non-ASCII": "café",
}


def _read(path: Path) -> SyncResult:
    return create_source(
        FileBilling.model_validate({"type": "file", "path": str(path)})
    ).fetch_all()


def _ids(result: SyncResult) -> list[str]:
    return [snapshot.account_id for snapshot in result.snapshots]


@pytest.mark.parametrize("bad", list(BAD_IDS.values()), ids=list(BAD_IDS))
def test_a_bad_account_id_in_csv_is_refused_and_the_rest_read(tmp_path: Path, bad: str) -> None:
    path = tmp_path / "billing.csv"
    write_csv(path, [flat_row("alpha"), flat_row(bad), flat_row("omega")])

    result = _read(path)

    assert _ids(result) == ["alpha", "omega"]
    (error,) = result.errors
    assert (error.row, error.field) == ("line 3", "account_id")
    assert "not starting with '.' or '-'" in error.message or "expected" in error.message


@pytest.mark.parametrize("bad", list(BAD_IDS.values()), ids=list(BAD_IDS))
def test_a_bad_account_id_in_json_is_refused_and_the_rest_read(tmp_path: Path, bad: str) -> None:
    path = tmp_path / "billing.json"
    accounts = [nested_account("alpha"), nested_account(bad), nested_account("omega")]
    path.write_text(json.dumps({"accounts": accounts}))

    result = _read(path)

    assert _ids(result) == ["alpha", "omega"]
    (error,) = result.errors
    assert error.field == "account_id" and error.row.startswith("#1")


@pytest.mark.parametrize("good", ["a", "_x", "acct.1", "A-b_c.d", "9" * 64])
def test_ordinary_account_ids_are_kept(good: str) -> None:
    assert fields.account_id(good) == good


def test_a_csv_cell_over_the_limit_reports_its_row_and_the_sync_goes_on(tmp_path: Path) -> None:
    """Python's csv module stops at 128 KiB by default and the whole file was lost; now the
    row with the long cell is reported under its column and every other row is read."""
    path = tmp_path / "billing.csv"
    long_name = "x" * (CELL_LIMIT + 1)
    # A huge quoted cell with line breaks and a forged row inside it: read as one cell.
    forged = "y" * 200_000 + '\nmallory,default,M,m@example.com,UTC,EUR,,false,,,,,,,,,,,\n"'
    rows = [
        flat_row("alpha"),
        flat_row("bravo", contact_name=long_name),
        flat_row("charlie", item_description=forged),
        flat_row("omega"),
    ]
    write_csv(path, rows)

    result = _read(path)

    assert _ids(result) == ["alpha", "omega"]
    assert [(error.row, error.field) for error in result.errors] == [
        ("line 3", "contact_name"),
        ("line 4", "item_description"),
    ]
    assert f"a cell of {CELL_LIMIT + 1} characters (the limit is {CELL_LIMIT})" in str(
        result.errors[0]
    )


def test_a_cell_just_within_the_limit_is_read_then_held_to_its_field_limit(tmp_path: Path) -> None:
    path = tmp_path / "billing.csv"
    write_csv(path, [flat_row("alpha", item_description="d" * CELL_LIMIT), flat_row("omega")])
    result = _read(path)
    (error,) = result.errors
    assert error.field == "item_description"
    assert f"expected at most {fields.TEXT_LIMIT} characters, got {CELL_LIMIT}" in error.message


LONG_VALUES: dict[str, tuple[str, str, int]] = {
    # csv column: (json path of the same field, limit)
    "contact_name": ("contact.name", "name", fields.NAME_LIMIT),
    "contact_email": ("contact.email", "email", fields.EMAIL_LIMIT),
    "plan": ("plan", "plan", fields.PLAN_LIMIT),
    "invoice_id": ("invoices[0].id", "invoice", fields.INVOICE_ID_LIMIT),
    "item_description": ("invoices[0].items[0].description", "item", fields.TEXT_LIMIT),
}


def _long(column: str, limit: int) -> str:
    if column == "contact_email":
        return "a" * (limit - len("@example.com") + 1) + "@example.com"
    return "v" * (limit + 1)


def _at_limit(column: str, limit: int) -> str:
    if column == "contact_email":
        return "a" * (limit - len("@example.com")) + "@example.com"
    return "v" * limit


@pytest.mark.parametrize("column", list(LONG_VALUES))
def test_text_over_its_limit_is_refused_in_csv(tmp_path: Path, column: str) -> None:
    _json_field, _what, limit = LONG_VALUES[column]
    path = tmp_path / "billing.csv"
    write_csv(
        path,
        [
            flat_row("alpha", **{column: _at_limit(column, limit)}),
            flat_row("bravo", **{column: _long(column, limit)}),
            flat_row("omega"),
        ],
    )

    result = _read(path)

    assert _ids(result) == ["alpha", "omega"]
    (error,) = result.errors
    assert (error.row, error.field) == ("line 3", column)


def _set(record: dict[str, Any], dotted: str, value: str) -> None:
    target: Any = record
    parts = dotted.replace("[0]", ".0").split(".")
    for part in parts[:-1]:
        target = target[int(part)] if part.isdigit() else target[part]
    target[parts[-1]] = value


@pytest.mark.parametrize("column", list(LONG_VALUES))
def test_text_over_its_limit_is_refused_in_json(tmp_path: Path, column: str) -> None:
    json_field, _what, limit = LONG_VALUES[column]
    good, bad = nested_account("alpha"), nested_account("bravo")
    _set(good, json_field, _at_limit(column, limit))
    _set(bad, json_field, _long(column, limit))
    path = tmp_path / "billing.json"
    path.write_text(json.dumps({"accounts": [good, bad, nested_account("omega")]}))

    result = _read(path)

    assert _ids(result) == ["alpha", "omega"]
    (error,) = result.errors
    assert error.field == json_field and "bravo" in error.row


def test_a_cell_over_the_ceiling_refuses_the_file_naming_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(file_source, "CSV_FIELD_CEILING", 4 * CELL_LIMIT)
    path = tmp_path / "billing.csv"
    write_csv(path, [flat_row("alpha"), flat_row("bravo", item_description="x" * 5 * CELL_LIMIT)])
    with pytest.raises(BillingError, match=r"billing.csv: line 3: not valid CSV: field larger"):
        _read(path)


def test_long_cells_in_scattered_accounts_are_reported_once_each(tmp_path: Path) -> None:
    """Rows of one account apart from each other are read in a second pass, which meets
    the long cell again: still one error per row, and every other account read."""
    long_text = "z" * (CELL_LIMIT + 5)
    rows = [
        flat_row("alpha"),
        flat_row("bravo"),
        flat_row("alpha", item_description="Domain", item_amount="4.00"),
        flat_row("charlie", item_description=long_text),
        flat_row("bravo", item_description=long_text),
        flat_row("omega"),
    ]
    path = tmp_path / "billing.csv"
    write_csv(path, rows)

    result = _read(path)

    assert _ids(result) == ["alpha", "omega"]
    assert [(error.row, error.field) for error in result.errors] == [
        ("line 5", "item_description"),
        ("line 6", "item_description"),
    ]
