"""Rendering client notices: escaping, currencies, the final notice's content, overrides."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.policy import compat32
from pathlib import Path

import pytest

from daemon.config.schema import BrandConfig, PolicyConfig
from daemon.domain.notice_kinds import NoticeKind
from daemon.domain.snapshot import AccountSnapshot, Contact, Invoice, LineItem
from daemon.domain.states import State
from daemon.notices.compose import _WRITING, compose
from daemon.notices.context import build_context
from daemon.notices.errors import AddressError
from daemon.notices.money import format_money
from daemon.notices.render import render_notice
from daemon.notices.request import NoticeRequest
from daemon.notices.templates import catalogs_of, create_environment, environment_for
from daemon.policy import LifecycleRecord

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SUSPEND_AT = datetime(2026, 3, 9, 8, 0, tzinfo=UTC)  # 17:00 in Tokyo
BRAND = BrandConfig(
    company_name="Example Hosting",
    sender="Billing <billing@example.com>",
    payment_url="https://pay.example.com/inv",
)
SCRIPT = "<script>alert(1)</script>"


def account(name: str = "Ada", item: str = "Web hosting", currency: str = "EUR") -> AccountSnapshot:
    """An account in Tokyo with one invoice of two lines."""
    amounts = {"EUR": ("1200.50", "34.00"), "USD": ("29.00", "0.99"), "JPY": ("8400", "3000")}
    first, second = (Decimal(a) for a in amounts[currency])
    invoice = Invoice(
        id="INV-7",
        due_at=NOW - timedelta(days=28),
        total=first + second,
        amount_due=first + second,
        currency=currency,
        items=(LineItem(item, first), LineItem("Domain", second)),
    )
    return AccountSnapshot(
        account_id="acme",
        plan="default",
        contact=Contact(name, "ada@example.org", "Asia/Tokyo"),
        balance=invoice.amount_due,
        currency=currency,
        invoices=(invoice,),
    )


def render(kind: NoticeKind, snapshot: AccountSnapshot, **extra: object) -> tuple[str, str, str]:
    """Compose a notice; returns (subject, text body, HTML body)."""
    record = LifecycleRecord(
        account_id="acme",
        state=State.FINAL_NOTICE,
        suspend_at=SUSPEND_AT,
        delete_at=SUSPEND_AT + timedelta(days=30),
        reminders_sent=1,
    )
    number = 1 if kind.facts.numbered else 0
    templates_dir = extra.pop("templates_dir", None)
    policy = extra.pop("policy", PolicyConfig())
    request = NoticeRequest(kind, number, snapshot, record, policy, NOW, **extra)  # type: ignore[arg-type]
    message = compose(request, BRAND, create_environment(templates_dir)).message()  # type: ignore[arg-type]
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    return str(message["Subject"]), text.get_content(), html.get_content()


@pytest.mark.parametrize("kind", list(NoticeKind))
def test_every_notice_kind_renders_text_and_html_with_headers(kind: NoticeKind) -> None:
    snapshot = account()
    request = NoticeRequest(
        kind,
        1 if kind.facts.numbered else 0,
        snapshot,
        LifecycleRecord(account_id="acme", suspend_at=SUSPEND_AT, delete_at=SUSPEND_AT),
        PolicyConfig(),
        NOW,
    )
    message = compose(request, BRAND, create_environment()).message()

    assert message.get_content_type() == "multipart/alternative"
    for header in ("From", "To", "Subject", "Date", "Message-ID", "X-Lapse-Notice"):
        assert message[header], header
    assert message["X-Lapse-Account"] == "acme"
    assert message["Message-ID"].endswith("@example.com>")


def test_client_text_is_escaped_in_html_and_verbatim_in_text() -> None:
    _subject, text, html = render(NoticeKind.FINAL, account(name=SCRIPT, item=SCRIPT))

    assert SCRIPT not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert SCRIPT in text


@pytest.mark.parametrize(
    ("currency", "line", "total"),
    [("EUR", "€1,200.50", "€1,234.50"), ("USD", "$0.99", "$29.99"), ("JPY", "¥8,400", "¥11,400")],
)
def test_amounts_follow_the_currency(currency: str, line: str, total: str) -> None:
    _subject, text, html = render(NoticeKind.FINAL, account(currency=currency))

    assert line in text and total in text
    assert line in html and total in html
    if currency == "JPY":
        assert "¥11,400.00" not in text  # yen have no minor unit


def test_format_money_uses_each_currencys_minor_unit() -> None:
    assert format_money(Decimal("1234.5"), "EUR") == "€1,234.50"
    assert format_money(Decimal("29"), "USD") == "$29.00"
    assert format_money(Decimal("11400"), "JPY") == "¥11,400"


def test_final_notice_has_items_total_options_and_the_local_suspension_time() -> None:
    subject, text, _html = render(NoticeKind.FINAL, account(currency="JPY"))

    assert "Final notice" in subject
    assert "INV-7" in text and "Web hosting" in text and "Domain" in text
    assert "17:00 JST" in text  # 08:00 UTC in the client's zone
    assert "9 March 2026" in text
    assert BRAND.payment_url in text
    assert "3 instalments" in text
    assert "maintenance page" in text
    assert "logins" in text


def test_a_removal_warning_names_no_date_an_unapproved_deletion_could_miss() -> None:
    """A deletion that waits for approval happens on its date or later: "on or after"."""
    gated = PolicyConfig(approve=["delete"])
    subject, text, html = render(NoticeKind.REMOVAL_WARNING, account(), policy=gated)
    review = "may happen later than this, never earlier"
    assert "deleted on or after 8 Apr" in subject
    assert review in text
    assert review in html
    subject, text, _html = render(NoticeKind.REMOVAL_WARNING, account())
    assert "deleted on 8 Apr" in subject
    assert "deleted permanently on:" in text
    assert review not in text


def test_suspension_notice_offers_the_download_link_only_when_there_is_one() -> None:
    link = "https://s3.example.com/backup.tar.zst?X-Amz-Expires=604800"
    _subject, with_link, html = render(NoticeKind.SUSPENSION, account(), download_url=link)
    _subject, without, _html = render(NoticeKind.SUSPENSION, account())

    assert link in with_link
    assert link.replace("&", "&amp;") in html
    assert "https://s3.example.com" not in without


def test_an_operator_template_overrides_the_shipped_one(tmp_path: Path) -> None:
    (tmp_path / "reminder.txt").write_text(
        "{% block subject %}Friendly nudge for {{ account_id }}{% endblock %}"
        "{% block body %}Please pay.{% endblock %}\n"
    )

    subject, text, _html = render(NoticeKind.REMINDER, account(), templates_dir=tmp_path)
    final_subject, _text, _html = render(NoticeKind.FINAL, account(), templates_dir=tmp_path)

    assert subject == "Friendly nudge for acme"
    assert "Please pay." in text
    assert "Final notice" in final_subject


def test_a_notice_reads_back_exactly_as_rendered_whatever_its_text_holds(tmp_path: Path) -> None:
    # A line starting "From " (which an mbox writer would turn into ">From "), blanks
    # at a line's end, a line longer than any mail line may be, and text beyond ASCII.
    (tmp_path / "reminder.txt").write_text(
        "{% block subject %}Zahlungserinnerung für {{ contact.name }} "
        + "ä" * 60
        + "{% endblock %}{% block body %}From the desk of {{ brand.company_name }}\n"
        "trailing   \n" + "x" * 200 + "\n.\n=3D and a tab\t\n{% endblock %}\n"
    )
    request = NoticeRequest(
        NoticeKind.REMINDER,
        1,
        account(name='Jürgen "Grüß", Ltd', item="Hébergement « pro »"),
        LifecycleRecord(account_id="acme", suspend_at=SUSPEND_AT, delete_at=SUSPEND_AT),
        PolicyConfig(),
        NOW,
    )
    environment = create_environment(tmp_path)
    composed = compose(request, BRAND, environment)
    language = catalogs_of(environment).choose("en", BRAND.language)
    context = build_context(request, BRAND, language)
    rendered = render_notice(environment_for(environment, language), request.kind, context)

    message = composed.message()
    assert max(len(line) for line in composed.raw.splitlines()) <= 78
    assert composed.raw.isascii()
    assert message["Subject"] == rendered.subject == composed.subject
    assert message["To"].addresses[0].display_name == 'Jürgen "Grüß", Ltd'
    assert message["To"].addresses[0].addr_spec == "ada@example.org" == composed.recipient
    assert message["From"].addresses[0].addr_spec == "billing@example.com"
    assert message["Message-ID"] == composed.message_id
    assert message["Date"].datetime == NOW
    assert (message["X-Lapse-Account"], message["X-Lapse-Notice"]) == ("acme", request.label)
    assert message["Content-Language"] == "en"
    text, html = (message.get_body(preferencelist=(kind,)) for kind in ("plain", "html"))
    assert text is not None and html is not None
    assert text.get_content() == rendered.text
    assert html.get_content() == rendered.html
    assert "From the desk of Example Hosting\ntrailing   \n" in text.get_content()


@pytest.mark.parametrize(
    ("name", "account_id", "header"),
    [
        ("Ana\nBcc: victim@example.com", "acme", "To"),
        ("Ana\u2028Bcc: victim@example.com", "acme", "To"),
        ("Ana", "acme\r\nBcc: victim@example.com", "X-Lapse-Account"),
    ],
)
def test_a_header_value_with_a_line_break_is_refused(
    name: str, account_id: str, header: str
) -> None:
    snapshot = replace(account(name=name), account_id=account_id)
    record = LifecycleRecord(account_id=account_id, suspend_at=SUSPEND_AT, delete_at=SUSPEND_AT)
    request = NoticeRequest(NoticeKind.FINAL, 0, snapshot, record, PolicyConfig(), NOW)

    with pytest.raises(AddressError, match=f"{header} header .* holds a line break"):
        compose(request, BRAND, create_environment())


@pytest.mark.parametrize(
    ("sender", "email", "reason"),
    [
        ("Billing <billing@example.com>", "ädä@example.org", "contact email .* is not usable"),
        ("Billing <billing@example.com>", "ada@exämple.org", "To address .* is not ASCII"),
        ("Billing <billing@example.com>", "not an address", "contact email .* is not usable"),
        ("Billing", "ada@example.org", "From address 'Billing' is not usable"),
    ],
)
def test_an_unusable_address_is_refused_naming_it(sender: str, email: str, reason: str) -> None:
    snapshot = account()
    snapshot = replace(snapshot, contact=replace(snapshot.contact, email=email))
    record = LifecycleRecord(account_id="acme", suspend_at=SUSPEND_AT, delete_at=SUSPEND_AT)
    request = NoticeRequest(NoticeKind.FINAL, 0, snapshot, record, PolicyConfig(), NOW)
    brand = BRAND.model_copy(update={"sender": sender})

    with pytest.raises(AddressError, match=reason):
        compose(request, brand, create_environment())


@pytest.mark.parametrize(
    "value",
    [
        "Billing <billing@example.com>",
        "=?utf-8?b?SsO8cmdlbiBHcsO8w58=?= <ada@example.org>",
        '"Doe, John" <j@example.org>',
        "a  b  ",
        "  leading\tand a tab",
        "Mon, 02 Mar 2026 09:00:00 +0000",
        "Final notice: service suspension on " + "9 March 2026 " * 8,  # folded
    ],
)
def test_a_header_is_written_as_compat32_writes_it(value: str) -> None:
    # The notice policy skips compat32's Header pass for a short ASCII value only.
    assert _WRITING.fold_binary("Subject", value) == compat32.fold_binary("Subject", value)
