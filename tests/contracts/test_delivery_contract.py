"""The notice delivery contract: what the notice desk and the ops alerts rely on from every
delivery (daemon/notices/delivery/base.py), checked against each of them.

- a delivered message arrives once, as it was composed (headers, non-ASCII text, the
  Message-ID the desk recorded), and the delivery returns a receipt;
- a second delivery of the same Message-ID writes nothing where the delivery keeps its
  own record (the outbox never writes one twice); where it cannot (SMTP: the desk marks
  a notice sent), both copies carry the one Message-ID;
- a refusal that a retry may overcome is TemporaryDeliveryError, and the retry then
  delivers exactly once; one that no retry will overcome is PermanentDeliveryError;
  neither leaves anything delivered. Both are DeliveryErrors, LapseErrors;
- a next hop that cannot be reached is a temporary refusal;
- messages delivered inside `together()` have each arrived once, as composed, when the
  block ends, and a message delivered from its stored bytes (`deliver_stored`, as the
  notice desk delivers) arrives as the original would.

To add a delivery: write a DeliveryLab for it (the delivery built from its notifier
config against its real service in the lab, and ways to make it refuse), then add one
line to IMPLEMENTATIONS below. Every check here then runs against it.

Each check is a plain function of a lab, so `test_a_broken_delivery_fails_the_check`
can run it against a deliberately broken delivery and show that it fails.
"""

from __future__ import annotations

import copy
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import make_msgid

import pytest

from daemon.config.schema import OutboxNotifier, SmtpNotifier
from daemon.domain.errors import LapseError
from daemon.notices.delivery import (
    Delivery,
    DeliveryError,
    OutboxDelivery,
    PermanentDeliveryError,
    TemporaryDeliveryError,
    create_delivery,
)
from daemon.notices.delivery.outbox import file_name
from tests.contracts.kit import Kit, check_fails
from tests.lab.services.smtp import SMTPServer


class DeliveryLab(ABC):
    """A delivery, where its messages arrive, and ways to make it refuse."""

    delivery: Delivery
    # Whether a second delivery of a Message-ID writes nothing (the delivery keeps a record).
    dedupes: bool

    @abstractmethod
    def delivered(self) -> list[EmailMessage]:
        """Return the messages that arrived, oldest first."""

    @abstractmethod
    def refuse_for_now(self) -> None:
        """Make the next delivery fail in a way a later retry overcomes."""

    @abstractmethod
    def heal(self) -> None:
        """End what `refuse_for_now` started."""

    @abstractmethod
    def refused_for_good(self, message: EmailMessage) -> EmailMessage:
        """Return `message`, or a variant of it, that the delivery can never deliver."""

    @abstractmethod
    def unreachable(self) -> Delivery:
        """Return a delivery of the same kind whose next hop cannot be reached."""


class SmtpLab(DeliveryLab):
    """Delivery through the lab's SMTP server, which can refuse on demand (4xx, 5xx)."""

    dedupes = False

    def __init__(self, kit: Kit) -> None:
        self.server: SMTPServer = kit.service("smtp_inbox")
        self.delivery = self._delivery(self.server.port)

    def _delivery(self, port: int) -> Delivery:
        config = {"type": "smtp", "host": self.server.host, "port": port, "security": "plain"}
        return create_delivery(SmtpNotifier.model_validate(config))

    def delivered(self) -> list[EmailMessage]:
        return [received.message for received in self.server.messages]

    def refuse_for_now(self) -> None:
        self.server.fail_next(451, "4.3.0 try again later")

    def heal(self) -> None:
        return  # the lab server refuses once, then accepts again

    def refused_for_good(self, message: EmailMessage) -> EmailMessage:
        self.server.fail_next(550, "5.1.1 mailbox unavailable", stage="rcpt")
        return message

    def unreachable(self) -> Delivery:
        return self._delivery(1)  # nothing listens on port 1 of loopback


class OutboxLab(DeliveryLab):
    """Delivery into an outbox directory, which a file standing in its place blocks."""

    dedupes = True

    def __init__(self, kit: Kit, delivery: type[OutboxDelivery] = OutboxDelivery) -> None:
        self.path = kit.tmp_path / "outbox"
        self.kind = delivery
        self.delivery = delivery(self.path)
        configured = create_delivery(OutboxNotifier(type="outbox", path=self.path))
        assert isinstance(configured, OutboxDelivery)  # what the config builds, subclassed

    def delivered(self) -> list[EmailMessage]:
        if not self.path.is_dir():
            return []
        files = sorted(self.path.glob("*.eml"), key=os.path.getmtime)
        return [_parsed(path.read_bytes()) for path in files]

    def refuse_for_now(self) -> None:
        self.path.write_text("a file where the outbox directory belongs\n")

    def heal(self) -> None:
        self.path.unlink()

    def refused_for_good(self, message: EmailMessage) -> EmailMessage:
        del message["Message-ID"]  # the outbox names files by it
        return message

    def unreachable(self) -> Delivery:
        blocked = self.path.with_name("blocked")
        blocked.write_text("not a directory\n")
        return self.kind(blocked / "outbox")


def _parsed(data: bytes) -> EmailMessage:
    parsed = message_from_bytes(data, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def smtp(kit: Kit) -> DeliveryLab:
    return SmtpLab(kit)


def outbox(kit: Kit) -> DeliveryLab:
    return OutboxLab(kit)


# One entry per delivery: a factory taking a Kit and returning its DeliveryLab.
IMPLEMENTATIONS = [
    pytest.param(smtp, id="smtp"),
    pytest.param(outbox, id="outbox"),
]


@pytest.fixture(params=IMPLEMENTATIONS)
def lab(request: pytest.FixtureRequest, kit: Kit) -> DeliveryLab:
    factory: Callable[[Kit], DeliveryLab] = request.param
    return factory(kit)


def notice() -> EmailMessage:
    """A final notice as the desk composes one: non-ASCII in headers and body, and a
    Message-ID of its own."""
    message = EmailMessage()
    message["From"] = "Example Hosting <billing@example.com>"
    message["To"] = "Jürgen Grüß <juergen@example.de>"
    message["Cc"] = "accounts@example.de"
    message["Subject"] = "Letzte Mahnung: Ihre Website wird am 16. Oktober gesperrt"
    message["Message-ID"] = make_msgid(domain="lapse.example.com")
    message["X-Lapse-Notice"] = "final"
    message.set_content(
        "Guten Tag Herr Grüß,\n\nIhre Rechnung 2026-0142 über 13,56 € ist offen.\n"
        "Bitte zahlen Sie bis zum 16. Oktober 2026, 10:00 Uhr (Europe/Berlin).\n"
    )
    return message


def assert_same(received: EmailMessage, sent: EmailMessage) -> None:
    """`received` is `sent` as composed: its headers that matter and its text (lines end
    in CRLF on the way through SMTP, as mail's canonical form has them)."""
    for header in ("From", "To", "Cc", "Subject", "Message-ID", "X-Lapse-Notice"):
        assert str(received[header]) == str(sent[header]), header
    assert received.get_content().replace("\r\n", "\n") == sent.get_content()


# --- the checks ------------------------------------------------------------------------


def check_delivers_a_message_once_as_composed(lab: DeliveryLab) -> None:
    message = notice()

    receipt = lab.delivery.deliver(message)

    assert isinstance(receipt, str) and receipt
    (received,) = lab.delivered()
    assert_same(received, message)


def check_a_second_delivery_of_a_message_id(lab: DeliveryLab) -> None:
    message = notice()

    lab.delivery.deliver(message)
    lab.delivery.deliver(message)

    copies = lab.delivered()
    assert len(copies) == (1 if lab.dedupes else 2)
    assert {str(copy["Message-ID"]) for copy in copies} == {str(message["Message-ID"])}


def check_a_temporary_refusal_then_one_delivery(lab: DeliveryLab) -> None:
    message = notice()
    lab.refuse_for_now()

    with pytest.raises(DeliveryError) as refused:
        lab.delivery.deliver(message)

    assert isinstance(refused.value, TemporaryDeliveryError), repr(refused.value)
    assert isinstance(refused.value, LapseError)
    assert lab.delivered() == []
    lab.heal()
    lab.delivery.deliver(message)
    (received,) = lab.delivered()
    assert_same(received, message)


def check_a_permanent_refusal(lab: DeliveryLab) -> None:
    message = lab.refused_for_good(notice())

    with pytest.raises(DeliveryError) as refused:
        lab.delivery.deliver(message)

    assert isinstance(refused.value, PermanentDeliveryError), repr(refused.value)
    assert isinstance(refused.value, LapseError)
    assert lab.delivered() == []


def check_an_unreachable_next_hop_is_temporary(lab: DeliveryLab) -> None:
    with pytest.raises(DeliveryError) as refused:
        lab.unreachable().deliver(notice())

    assert isinstance(refused.value, TemporaryDeliveryError), repr(refused.value)


def check_messages_delivered_together(lab: DeliveryLab) -> None:
    messages = [notice() for _ in range(3)]

    with lab.delivery.together():
        receipts = [lab.delivery.deliver(message) for message in messages[:2]]
        stored = messages[2].as_bytes()
        receipts.append(lab.delivery.deliver_stored(stored, str(messages[2]["Message-ID"])))

    assert all(isinstance(receipt, str) and receipt for receipt in receipts)
    received = {str(message["Message-ID"]): message for message in lab.delivered()}
    assert len(received) == len(lab.delivered()) == 3
    for message in messages:
        assert_same(received[str(message["Message-ID"])], message)


# --- the contract, run against every delivery ------------------------------------------


def test_a_message_arrives_once_as_composed(lab: DeliveryLab) -> None:
    check_delivers_a_message_once_as_composed(lab)


def test_a_second_delivery_of_a_message_id_writes_nothing_where_recorded(
    lab: DeliveryLab,
) -> None:
    check_a_second_delivery_of_a_message_id(lab)


def test_a_temporary_refusal_is_temporary_and_a_retry_delivers_once(lab: DeliveryLab) -> None:
    check_a_temporary_refusal_then_one_delivery(lab)


def test_a_permanent_refusal_is_permanent_and_delivers_nothing(lab: DeliveryLab) -> None:
    check_a_permanent_refusal(lab)


def test_an_unreachable_next_hop_is_a_temporary_refusal(lab: DeliveryLab) -> None:
    check_an_unreachable_next_hop_is_temporary(lab)


def test_messages_delivered_together_have_each_arrived_once_when_the_block_ends(
    lab: DeliveryLab,
) -> None:
    check_messages_delivered_together(lab)


# --- the checks can fail ---------------------------------------------------------------


class _WritesEveryTime(OutboxDelivery):
    """Forgets that the Message-ID's file exists: a retry leaves a second copy."""

    def deliver(self, message: EmailMessage) -> str:
        self.path.mkdir(parents=True, exist_ok=True)
        target = self.path / f"{len(list(self.path.iterdir()))}-{file_name(message)}"
        target.write_bytes(message.as_bytes())
        return str(target)


class _EverythingIsPermanent(OutboxDelivery):
    """Gives up on every failure: a full disk would lose the final notice for good."""

    def deliver(self, message: EmailMessage) -> str:
        try:
            return super().deliver(message)
        except TemporaryDeliveryError as error:
            raise PermanentDeliveryError(str(error)) from error


class _ClaimsSuccess(OutboxDelivery):
    """Returns a receipt whatever happened."""

    def deliver(self, message: EmailMessage) -> str:
        try:
            return super().deliver(message)
        except DeliveryError:
            return str(self.path / "nothing.eml")


class _AsciiOnly(OutboxDelivery):
    """Writes the text with what is not ASCII dropped."""

    def deliver(self, message: EmailMessage) -> str:
        plain = copy.deepcopy(message)
        plain.set_content(message.get_content().encode("ascii", "ignore").decode())
        return super().deliver(plain)


class _ForgetsTheBatch(OutboxDelivery):
    """Writes the messages of a together() block nowhere: they are never put in place."""

    @contextmanager
    def together(self) -> Iterator[None]:
        with suppress(_DroppedError), super().together():
            yield
            raise _DroppedError


class _DroppedError(Exception):
    """Ends a together() block in a way that discards what it wrote."""


@pytest.mark.parametrize(
    ("broken", "check"),
    [
        (_WritesEveryTime, check_a_second_delivery_of_a_message_id),
        (_EverythingIsPermanent, check_a_temporary_refusal_then_one_delivery),
        (_EverythingIsPermanent, check_an_unreachable_next_hop_is_temporary),
        (_ClaimsSuccess, check_a_permanent_refusal),
        (_AsciiOnly, check_delivers_a_message_once_as_composed),
        (_ForgetsTheBatch, check_messages_delivered_together),
    ],
)
def test_a_broken_delivery_fails_the_check(
    kit: Kit, broken: type[OutboxDelivery], check: Callable[[DeliveryLab], None]
) -> None:
    check_fails(lambda: check(OutboxLab(kit, broken)))
