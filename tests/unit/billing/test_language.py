"""The client's language as billing states it: read into a CLDR locale identifier, the
brand's when it is blank or unknown (logged, never an error), refused when it is no
language tag at all, and kept through the stored snapshot."""

from __future__ import annotations

from decimal import Decimal

import pytest
import structlog

from daemon.billing import fields as f
from daemon.billing.fields import FieldError
from daemon.billing.nested import parse_document
from daemon.domain.snapshot import AccountSnapshot, Contact
from daemon.domain.stored_snapshot import snapshot_digest, snapshot_from_json, snapshot_to_json


@pytest.mark.parametrize(
    ("raw", "read"),
    [
        ("de", "de"),
        ("de-DE", "de_DE"),
        ("de_de", "de_DE"),
        ("PT-br", "pt_BR"),
        ("ja", "ja"),
        ("zh-Hant-TW", "zh_Hant_TW"),
        (" fr ", "fr"),
        ("", None),
        (None, None),
    ],
)
def test_a_language_tag_reads_as_a_cldr_locale(raw: object, read: str | None) -> None:
    assert f.language(raw, "contact.language") == read


@pytest.mark.parametrize("raw", ["xx", "klingon", "english", "qq-ZZ"])
def test_an_unknown_language_is_the_brands_and_is_logged(raw: str) -> None:
    f.known_language.cache_clear()
    with structlog.testing.capture_logs() as logs:
        assert f.language(raw, "contact.language") is None
    assert [entry["language"] for entry in logs] == [raw]


@pytest.mark.parametrize(
    "raw",
    [
        "de" * 40,  # longer than any language tag
        "de DE",
        "de\nBcc: x@example.com",
        "<script>",
        "de;q=0.9",
        "../../etc/passwd",
        12,
    ],
)
def test_a_value_that_is_no_language_tag_is_refused_like_any_malformed_field(
    raw: object,
) -> None:
    with pytest.raises(FieldError) as refused:
        f.language(raw, "contact.language")
    assert refused.value.field == "contact.language"


def test_a_hostile_language_skips_the_account_naming_the_field() -> None:
    account = {
        "account_id": "acme",
        "plan": "default",
        "contact": {"name": "Ada", "email": "ada@example.org", "language": "de\x00" + "x" * 99},
        "currency": "EUR",
    }

    result = parse_document([account], "test")

    assert result.snapshots == ()
    assert [error.field for error in result.errors] == ["contact.language"]


def _snapshot(language: str | None) -> AccountSnapshot:
    return AccountSnapshot(
        account_id="acme",
        plan="default",
        contact=Contact("Ada", "ada@example.org", "Europe/Berlin", language),
        balance=Decimal("12.50"),
        currency="EUR",
    )


def test_the_stored_snapshot_keeps_the_language() -> None:
    assert snapshot_from_json(snapshot_to_json(_snapshot("de_DE"))) == _snapshot("de_DE")


def test_a_snapshot_stored_before_languages_were_read_decodes_and_digests_alike() -> None:
    stored = snapshot_to_json(_snapshot(None))

    assert "language" not in stored["contact"]  # as rows stored by earlier releases
    assert snapshot_from_json(stored) == _snapshot(None)
    assert snapshot_digest(stored) != snapshot_digest(snapshot_to_json(_snapshot("de")))
