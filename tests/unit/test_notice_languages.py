"""Every notice kind in every language, for clients in Tokyo (JPY), Berlin (EUR) and New
York (USD): no text left in English where a translation exists, the subject included,
and amounts and dates written the way the client's locale writes them."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.message import EmailMessage
from pathlib import Path
from typing import NamedTuple

import pytest
from babel.messages.pofile import read_po

from daemon.config.schema import BrandConfig, PolicyConfig
from daemon.domain.notice_kinds import NoticeKind
from daemon.domain.snapshot import (
    AccountSnapshot,
    Contact,
    Credit,
    Database,
    Instalment,
    Invoice,
    LineItem,
    Service,
)
from daemon.domain.states import State
from daemon.notices.catalogs import DOMAIN, SHIPPED_DIR, Catalogs
from daemon.notices.compose import compose
from daemon.notices.money import format_money, format_when
from daemon.notices.request import NoticeRequest
from daemon.notices.templates import create_environment
from daemon.policy import LifecycleRecord

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SUSPEND_AT = datetime(2026, 3, 9, 8, 0, tzinfo=UTC)
DELETE_AT = SUSPEND_AT + timedelta(days=30)
BRAND = BrandConfig(company_name="Example Hosting", sender="Billing <billing@example.com>")
LANGUAGES = ("en", "de", "fr", "es", "nl", "pt", "ja")
ENV = create_environment()


class City(NamedTuple):
    zone: str
    currency: str
    balance: Decimal
    territory: str  # the region of a client who speaks the city's own language


CITIES = {
    "tokyo": City("Asia/Tokyo", "JPY", Decimal(1235), "ja"),
    "berlin": City("Europe/Berlin", "EUR", Decimal("1234.50"), "de"),
    "new-york": City("America/New_York", "USD", Decimal("1234.50"), "en"),
}
REGION = {"ja": "ja_JP", "de": "de_DE", "en": "en_US"}


def client_language(language: str, city: City) -> str:
    """The language billing states: with the region for the city's own language."""
    return REGION[language] if language == city.territory else language


def snapshot(city: City, language: str | None) -> AccountSnapshot:
    """An account owing `city.balance` on two invoices, with a credit, instalments, two
    domains and two databases, so every template's optional parts are rendered."""
    half = (city.balance / 2).quantize(Decimal(1) if city.currency == "JPY" else Decimal("0.01"))
    invoices = tuple(
        Invoice(
            id=f"INV-{n}",
            due_at=NOW - timedelta(days=28 - n),
            total=amount + Decimal(5),
            amount_due=amount,
            currency=city.currency,
            items=(LineItem("Web hosting", amount + Decimal(5)),),
        )
        for n, amount in ((1, half), (2, city.balance - half + Decimal(5)))
    )
    return AccountSnapshot(
        account_id="acme",
        plan="default",
        contact=Contact("Ada Lovelace", "ada@example.org", city.zone, language),
        balance=city.balance,
        currency=city.currency,
        invoices=invoices,
        services=(
            Service(
                "web1",
                "acme",
                "/srv/www/acme",
                ("acme.example", "www.acme.example"),
                (Database("mariadb", "acme_wp"), Database("postgresql", "acme_app")),
            ),
        ),
        instalments=(
            Instalment(NOW + timedelta(days=7), half, paid=True),
            Instalment(NOW + timedelta(days=37), city.balance - half),
        ),
        credits=(Credit("Credit note CN-3", Decimal(5)),),
    )


def compose_in(kind: NoticeKind, account: AccountSnapshot, env: object = ENV) -> EmailMessage:
    record = LifecycleRecord(
        account_id="acme",
        state=State.SUSPENDED,
        suspend_at=SUSPEND_AT,
        delete_at=DELETE_AT,
        suspended_at=SUSPEND_AT,
        reminders_sent=2,
    )
    number = 2 if kind.facts.numbered else 0
    link = "https://backups.example.com/acme.tar.zst"
    request = NoticeRequest(kind, number, account, record, PolicyConfig(), NOW, download_url=link)
    return compose(request, BRAND, env).message()  # type: ignore[arg-type]


def readable(message: EmailMessage) -> str:
    """The subject, the text body and the HTML body's text, as one string to search."""
    text, page = (message.get_body(preferencelist=(kind,)) for kind in ("plain", "html"))
    assert text is not None and page is not None
    shown = html.unescape(re.sub(r"<[^>]+>", " ", str(page.get_content())))
    return "\n".join((str(message["Subject"]), str(text.get_content()), shown))


def english_left(
    message: EmailMessage, language: str, catalog_root: Path = SHIPPED_DIR
) -> set[str]:
    """Return the English phrases of translated messages that `message` still shows: each
    run of two words or more between the placeholders of a message id whose catalog
    entry differs from it."""
    with (catalog_root / language / "LC_MESSAGES" / f"{DOMAIN}.po").open("rb") as handle:
        catalog = read_po(handle, locale=language)
    shown = readable(message)
    left = set()
    for entry in catalog:
        if not entry.id or entry.string == entry.id:
            continue
        ids = entry.id if isinstance(entry.id, tuple | list) else (entry.id,)
        for text in ids:
            for phrase in re.split(r"%\(\w+\)s", text):
                phrase = phrase.strip(" ,.:;()")
                if len(phrase.split()) >= 2 and phrase in shown:
                    left.add(phrase)
    return left


def operator_catalog(templates_dir: Path, language: str, messages: dict[str, str]) -> None:
    """Write an operator's catalog of `language` holding `messages` (id: translation)."""
    folder = templates_dir / "locale" / language / "LC_MESSAGES"
    folder.mkdir(parents=True)
    entries = "".join(f'msgid "{key}"\nmsgstr "{value}"\n\n' for key, value in messages.items())
    header = 'msgid ""\nmsgstr "Content-Type: text/plain; charset=utf-8\\n"\n\n'
    (folder / f"{DOMAIN}.po").write_text(header + entries, encoding="utf-8")


def plain(text: str) -> str:
    """`text` with CLDR's no-break spaces as ordinary ones."""
    return text.replace("\u00a0", " ").replace("\u202f", " ")


def test_the_languages_are_the_seven_shipped() -> None:
    assert Catalogs().languages() == frozenset(LANGUAGES)


@pytest.mark.parametrize("city", list(CITIES), ids=list(CITIES))
@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", list(NoticeKind), ids=[kind.value for kind in NoticeKind])
def test_every_kind_is_written_in_the_clients_language(
    kind: NoticeKind, language: str, city: str
) -> None:
    place = CITIES[city]
    wanted = client_language(language, place)
    english = compose_in(kind, snapshot(place, None))
    message = compose_in(kind, snapshot(place, wanted))

    assert message["Content-Language"] == language
    page = message.get_body(preferencelist=("html",))
    assert page is not None and f'<html lang="{language}">' in str(page.get_content())
    if language != "en":
        assert english_left(message, language) == set()
        assert readable(message) != readable(english)
    # Every amount and date the English notice shows, in the client's locale's format.
    shown, english_shown = plain(readable(message)), readable(english)
    amounts = [place.balance, -Decimal(5)]
    for amount in amounts:
        if format_money(amount, place.currency) in english_shown:
            assert plain(format_money(amount, place.currency, locale=wanted)) in shown
    for moment in (SUSPEND_AT, DELETE_AT):
        for style in ("datetime", "short"):
            if format_when(moment, place.zone, style=style) in english_shown:
                localized = format_when(moment, place.zone, style=style, locale=wanted)
                assert plain(localized) in shown, localized


@pytest.mark.parametrize(
    ("city", "language", "amount", "day"),
    [
        ("berlin", "de_DE", "1.234,50 €", "9. März 2026"),
        ("tokyo", "ja_JP", "￥1,235", "2026年3月9日"),
        ("new-york", "en_US", "$1,234.50", "March 9, 2026"),
        ("berlin", "fr", "1 234,50 €", "9 mars 2026"),
        ("berlin", "es", "1.234,50 €", "9 de marzo de 2026"),
        ("berlin", "nl", "€ 1.234,50", "9 maart 2026"),
        ("berlin", "pt", "€ 1.234,50", "9 de março de 2026"),
    ],
)
def test_the_final_notice_writes_amounts_and_dates_as_the_locale_does(
    city: str, language: str, amount: str, day: str
) -> None:
    message = compose_in(NoticeKind.FINAL, snapshot(CITIES[city], language))
    text = message.get_body(preferencelist=("plain",))
    assert text is not None

    assert day in plain(str(message["Subject"]))
    assert amount in plain(str(text.get_content()))


def test_a_client_without_a_language_gets_the_brands(tmp_path: Path) -> None:
    account = snapshot(CITIES["berlin"], None)
    german_brand = BRAND.model_copy(update={"language": "de"})

    message = compose(
        NoticeRequest(
            NoticeKind.REMINDER,
            1,
            account,
            LifecycleRecord(account_id="acme"),
            PolicyConfig(),
            NOW,
        ),
        german_brand,
        ENV,
    ).message()

    assert message["Content-Language"] == "de"
    assert "Zahlungserinnerung 1" in str(message["Subject"])


@pytest.mark.parametrize("unknown", ["it", "ko"])
def test_a_language_without_a_catalog_gets_the_brands(unknown: str) -> None:
    message = compose_in(NoticeKind.REMINDER, snapshot(CITIES["berlin"], unknown))

    assert message["Content-Language"] == "en"
    assert "Reminder 2" in str(message["Subject"])
    assert "€1,234.50" in readable(message)  # the brand's locale formats it too


def test_english_left_in_a_notice_is_found(tmp_path: Path) -> None:
    """The check above fails when a translation is missing: an operator catalog that
    'translates' two messages back into English leaves them in the German notice."""
    back = (
        "Your hosting service has been suspended",
        "Logins to your hosting account are disabled.",
    )
    operator_catalog(tmp_path, "de", {english: english for english in back})
    env = create_environment(tmp_path)

    message = compose_in(NoticeKind.SUSPENSION, snapshot(CITIES["berlin"], "de"), env)

    assert english_left(message, "de") == {
        "Your hosting service has been suspended",
        "Logins to your hosting account are disabled",
    }


def test_an_operator_adds_a_language_and_overrides_a_message(tmp_path: Path) -> None:
    operator_catalog(
        tmp_path,
        "it",
        {"Your hosting service has been suspended": "Il suo servizio di hosting è stato sospeso"},
    )
    operator_catalog(tmp_path, "de", {"Kind regards,": "Herzliche Grüße"})
    env = create_environment(tmp_path)

    in_italian = compose_in(NoticeKind.SUSPENSION, snapshot(CITIES["berlin"], "it_IT"), env)
    in_german = compose_in(NoticeKind.SUSPENSION, snapshot(CITIES["berlin"], "de"), env)

    assert in_italian["Content-Language"] == "it"
    assert str(in_italian["Subject"]) == "Il suo servizio di hosting è stato sospeso"
    assert "1.234,50 €" in plain(readable(in_italian))  # Italian amounts; English text
    assert "Herzliche Grüße" in readable(in_german)  # the operator's wording
    assert "Ihr Hosting-Dienst wurde gesperrt" in str(in_german["Subject"])  # the rest shipped


def test_an_operator_template_for_one_language_replaces_it_there_only(tmp_path: Path) -> None:
    (tmp_path / "ja").mkdir()
    (tmp_path / "ja" / "reminder.txt").write_text(
        '{% extends "base.txt" %}{% block subject %}お支払いのお願い{% endblock %}'
        "{% block body %}{{ amount_due | money }}{% endblock %}\n",
        encoding="utf-8",
    )
    env = create_environment(tmp_path)

    japanese = compose_in(NoticeKind.REMINDER, snapshot(CITIES["tokyo"], "ja_JP"), env)
    german = compose_in(NoticeKind.REMINDER, snapshot(CITIES["tokyo"], "de"), env)

    assert str(japanese["Subject"]) == "お支払いのお願い"
    assert "￥1,235" in readable(japanese) and "Ada Lovelace 様" in readable(japanese)
    assert "Zahlungserinnerung 2" in str(german["Subject"])
