"""Turning a notice request into a complete multipart email."""

from __future__ import annotations

from email.errors import HeaderParseError
from email.headerregistry import Address, BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.policy import default as default_policy
from email.utils import format_datetime, make_msgid, parseaddr

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


class _HeaderClasses(HeaderRegistry):
    """The standard header registry, making each header name's class once.

    HeaderRegistry makes a new class (with `type()`) for every header it parses: a
    third of the time spent composing a notice, and a first sync composes one for every
    account in dunning. The classes it makes for one name are alike, so one serves.
    """

    def __init__(self) -> None:
        super().__init__()
        self._made: dict[str, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        made = self._made.get(key)
        if made is None:
            made = self._made[key] = super().__getitem__(name)
        return made


# The standard policy (the same headers, folding and bytes), with the registry above.
NOTICE_POLICY = default_policy.clone(header_factory=_HeaderClasses())


def compose(request: NoticeRequest, brand: BrandConfig, env: Environment) -> EmailMessage:
    """Return the notice for `request` as a multipart/alternative email (text, then HTML).

    It is written in the contact's language when a catalog of it exists, else in the
    brand's (`Catalogs.choose`), with amounts and dates in that language's locale;
    `env` is an environment made by `create_environment`, whose settings the
    language's own environment is made with. Headers: From (the brand's sender), To
    (the contact), Subject, Date (`request.now`), a fresh Message-ID on the sender's
    domain, Content-Language, and X-Lapse-Account / X-Lapse-Notice. Raises RenderError
    when a template fails and AddressError when the contact or sender address is
    unusable.
    """
    language = catalogs_of(env).choose(request.snapshot.contact.language, brand.language)
    context = build_context(request, brand, language)
    rendered = render_notice(environment_for(env, language), request.kind, context)
    message = EmailMessage(policy=NOTICE_POLICY)
    _set_header(message, "From", brand.sender)
    _set_header(message, "To", recipient(request.snapshot.contact))
    message["Subject"] = rendered.subject
    message["Date"] = format_datetime(request.now)
    message["Message-ID"] = make_msgid(domain=sender_domain(brand.sender))
    message[ACCOUNT_HEADER] = request.snapshot.account_id
    message[NOTICE_HEADER] = request.label
    _set_bodies(message, rendered)
    # After the bodies: setting content drops the Content-* headers set before.
    message[LANGUAGE_HEADER] = language.tag
    return message


def recipient(contact: Contact) -> Address:
    """Return the contact as an address; non-ASCII names are encoded when the email is written.

    Raises AddressError when the contact's email is not a single valid address.
    """
    try:
        return Address(display_name=contact.name, addr_spec=contact.email.strip())
    except (ValueError, HeaderParseError) as error:
        raise AddressError(f"contact email {contact.email!r} is not usable: {error}") from error


def sender_domain(sender: str) -> str:
    """Return the domain of the sender address ('example.com' for 'Billing <b@example.com>')."""
    _name, address = parseaddr(sender)
    domain = address.rpartition("@")[2]
    return domain if "@" in address and domain else _FALLBACK_MSGID_DOMAIN


def _set_header(message: EmailMessage, name: str, value: str | Address) -> None:
    """Set an address header; raises AddressError when the value does not parse as one."""
    try:
        message[name] = value
    except (ValueError, HeaderParseError) as error:
        raise AddressError(f"{name} address {str(value)!r} is not usable: {error}") from error


def _set_bodies(message: EmailMessage, rendered: RenderedNotice) -> None:
    """Make `message` multipart/alternative: the text first, HTML as the preferred last part."""
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
