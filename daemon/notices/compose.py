"""Turning a notice request into a complete multipart email."""

from __future__ import annotations

import binascii
import secrets
from dataclasses import dataclass
from email import message_from_bytes
from email.errors import HeaderParseError
from email.header import Header
from email.headerregistry import Address
from email.message import EmailMessage
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.policy import Compat32
from email.policy import default as default_policy
from email.utils import format_datetime, formataddr, make_msgid, parseaddr
from functools import lru_cache
from typing import Any

from jinja2 import Environment

from daemon.config.schema import BrandConfig
from daemon.domain.snapshot import Contact
from daemon.notices.context import build_context
from daemon.notices.errors import AddressError
from daemon.notices.render import RenderedNotice, render_notice
from daemon.notices.request import NoticeRequest
from daemon.notices.templates import catalogs_of, environment_for

ACCOUNT_HEADER = "X-Lapse-Account"
# RFC 3282: the language the notice is written in ('de', 'pt-BR').
LANGUAGE_HEADER = "Content-Language"
NOTICE_HEADER = "X-Lapse-Notice"

# make_msgid() would otherwise ask DNS for this host's name on every call.
_FALLBACK_MSGID_DOMAIN = "localhost"


class _NoticeWriting(Compat32):
    """How a notice is written: the legacy API's policy, which keeps header values as given
    instead of parsing each into the header registry's objects (two thirds of the time
    a notice took with the standard policy, and a first sync composes one for every
    account in dunning). A short ASCII header is written as it is, without compat32's
    `Header` pass (which gives the same line); others are folded by that pass."""

    def fold_binary(self, name: str, value: Any) -> bytes:
        """Return header `name: value` as the bytes of its line(s)."""
        if (
            isinstance(value, str)
            and value.isascii()
            and len(name) + 2 + len(value) <= (self.max_line_length or 78)
        ):
            return f"{name}: {value}{self.linesep}".encode("ascii")
        folded: bytes = super().fold_binary(name, value)
        return folded


# A body line starting "From " stays as it is (compat32 would write ">From ", for mbox).
_WRITING = _NoticeWriting(mangle_from_=False)
# Every character str.splitlines() breaks on: a header must be one line.
_LINE_BREAKS = frozenset("\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029")


@dataclass(frozen=True, slots=True)
class ComposedNotice:
    """A notice written as the bytes that are stored and sent, with the facts the state
    database records of it."""

    raw: bytes  # the whole email, lines ending in \n
    recipient: str  # the contact's address ('ada@example.org')
    subject: str  # as rendered, before any encoding
    message_id: str  # '<...@example.com>'

    def message(self) -> EmailMessage:
        """Return the email read back with the standard policy (headers decoded)."""
        message = message_from_bytes(self.raw, policy=default_policy)
        assert isinstance(message, EmailMessage)
        return message


def compose(request: NoticeRequest, brand: BrandConfig, env: Environment) -> ComposedNotice:
    """Return the notice for `request` as a multipart/alternative email (text, then HTML).

    It is written in the contact's language when a catalog of it exists, else in the
    brand's (`Catalogs.choose`), with amounts and dates in that language's locale;
    `env` is an environment made by `create_environment`, whose settings the
    language's own environment is made with. Headers: From (the brand's sender), To
    (the contact), Subject, Date (`request.now`), a fresh Message-ID on the sender's
    domain, X-Lapse-Account / X-Lapse-Notice and Content-Language; a header holding
    anything but ASCII is written as RFC 2047 encoded words, each body as UTF-8 in
    quoted-printable. Raises RenderError when a template fails and AddressError when
    the contact or sender address is unusable or a header value holds a line break.
    """
    language = catalogs_of(env).choose(request.snapshot.contact.language, brand.language)
    context = build_context(request, brand, language)
    rendered = render_notice(environment_for(env, language), request.kind, context)
    to = recipient(request.snapshot.contact)
    message_id = make_msgid(domain=sender_domain(brand.sender))
    message = MIMEMultipart("alternative", policy=_WRITING)
    message["From"] = sender_header(brand.sender)
    message["To"] = _address_header("To", to)
    message["Subject"] = _header("Subject", rendered.subject)
    message["Date"] = format_datetime(request.now)
    message["Message-ID"] = message_id
    message[ACCOUNT_HEADER] = _header(ACCOUNT_HEADER, request.snapshot.account_id)
    message[NOTICE_HEADER] = _header(NOTICE_HEADER, request.label)
    message[LANGUAGE_HEADER] = _header(LANGUAGE_HEADER, language.tag)
    _attach_bodies(message, rendered)
    # Chosen here, not by the generator, which compiles a pattern per message to check
    # that the bodies do not hold it: a quoted-printable body cannot ("=" is written
    # "=3D" there).
    message.set_boundary(f"==============={secrets.randbelow(10**19)}==")
    return ComposedNotice(message.as_bytes(), to.addr_spec, rendered.subject, message_id)


def recipient(contact: Contact) -> Address:
    """Return the contact as an address; non-ASCII names are encoded when the email is written.

    Raises AddressError when the contact's name holds a line break or its email is not
    a single valid address.
    """
    _refuse_line_breaks("To", contact.name)
    try:
        return Address(display_name=contact.name, addr_spec=contact.email.strip())
    except (ValueError, HeaderParseError) as error:
        raise AddressError(f"contact email {contact.email!r} is not usable: {error}") from error


@lru_cache(maxsize=64)
def sender_domain(sender: str) -> str:
    """Return the domain of the sender address ('example.com' for 'Billing <b@example.com>')."""
    _name, address = parseaddr(sender)
    domain = address.rpartition("@")[2]
    return domain if "@" in address and domain else _FALLBACK_MSGID_DOMAIN


@lru_cache(maxsize=64)
def sender_header(sender: str) -> str:
    """Return the From header for the brand's `sender` ('Billing <b@example.com>'), its
    name encoded when it is not ASCII. Raises AddressError when it is not one usable
    address."""
    name, address = parseaddr(sender)
    try:
        checked = Address(display_name=name, addr_spec=address)
    except (ValueError, HeaderParseError) as error:
        raise AddressError(f"From address {sender!r} is not usable: {error}") from error
    if not checked.domain:
        raise AddressError(f"From address {sender!r} is not usable: it names no domain")
    return _address_header("From", checked)


def _address_header(name: str, address: Address) -> str:
    """Return `address` as the value of header `name`: its display name quoted or encoded as
    needed. Raises AddressError when the address itself is not ASCII or a part of it
    holds a line break."""
    _refuse_line_breaks(name, address.display_name)
    try:
        return formataddr((address.display_name, address.addr_spec), charset="utf-8")
    except UnicodeError as error:
        raise AddressError(f"{name} address {address.addr_spec!r} is not ASCII") from error


def _header(name: str, value: str) -> str:
    """Return `value` as the value of header `name`: as it is when ASCII, else as encoded
    words (folded into lines that fit). Raises AddressError (a NoticeError) when it holds
    a line break, which would end the header and start another."""
    _refuse_line_breaks(name, value)
    return value if value.isascii() else Header(value, "utf-8", header_name=name).encode()


def _refuse_line_breaks(name: str, value: str) -> None:
    """Raise AddressError when `value`, bound for header `name`, holds a line break."""
    if not _LINE_BREAKS.isdisjoint(value):
        raise AddressError(f"{name} header {value!r} holds a line break")


def _attach_bodies(message: MIMEMultipart, rendered: RenderedNotice) -> None:
    """Attach the text part, then the HTML part (the preferred one, last)."""
    for subtype, body in (("plain", rendered.text), ("html", rendered.html)):
        part = MIMENonMultipart("text", subtype, policy=_WRITING, charset="utf-8")
        part["Content-Transfer-Encoding"] = "quoted-printable"
        # binascii's encoder (in C) keeps line ends, encodes trailing blanks and wraps
        # lines at 76 columns, as RFC 2045 asks.
        part.set_payload(binascii.b2a_qp(body.encode(), istext=True).decode("ascii"))
        message.attach(part)
