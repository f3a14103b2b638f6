"""An SMTP sink (aiosmtpd) on a random loopback port that records mail and can fail on demand."""

from __future__ import annotations

import email
import email.policy
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, Literal

from tests.lab.services.common import DEPS_HINT, LabDependencyError, free_port

Stage = Literal["rcpt", "data"]


@dataclass(frozen=True)
class ReceivedMessage:
    """One accepted SMTP transaction: envelope, raw bytes and the parsed message."""

    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    message: EmailMessage


@dataclass
class _Failure:
    code: int
    text: str
    stage: Stage
    remaining: int


class RecordingHandler:
    """aiosmtpd handler: stores accepted messages, answers queued failures first.

    aiosmtpd calls it on the controller's event-loop thread while tests read and change it
    from theirs, so shared state sits behind a lock.
    """

    def __init__(self) -> None:
        """Start with no messages and no pending failures."""
        self.lock = threading.Lock()
        self.messages: list[ReceivedMessage] = []
        self.failures: list[_Failure] = []

    def _take_failure(self, stage: Stage) -> str | None:
        """Consume one pending failure for `stage`; return its SMTP reply, or None."""
        with self.lock:
            for failure in self.failures:
                if failure.stage == stage:
                    failure.remaining -= 1
                    if failure.remaining <= 0:
                        self.failures.remove(failure)
                    return f"{failure.code} {failure.text}"
        return None

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        """Accept the recipient unless a RCPT failure is pending."""
        reply = self._take_failure("rcpt")
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: Any, session: Any, envelope: Any
    ) -> str:
        """Store the message unless a DATA failure is pending."""
        reply = self._take_failure("data")
        if reply:
            return reply
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode()
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)  # guaranteed by policy.default
        with self.lock:
            self.messages.append(
                ReceivedMessage(
                    mail_from=envelope.mail_from,
                    rcpt_tos=list(envelope.rcpt_tos),
                    raw=raw,
                    message=parsed,
                )
            )
        return "250 Message accepted"


@dataclass
class SMTPServer:
    """Handle on the lab SMTP sink: no TLS, no AUTH, every message kept in `messages`."""

    host: str
    port: int
    handler: RecordingHandler
    controller: Any = field(repr=False)  # aiosmtpd.controller.Controller

    @property
    def messages(self) -> list[ReceivedMessage]:
        """A snapshot of the messages received so far, oldest first."""
        with self.handler.lock:
            return list(self.handler.messages)

    def clear(self) -> None:
        """Forget received messages and pending failures."""
        with self.handler.lock:
            self.handler.messages.clear()
            self.handler.failures.clear()

    def fail_next(
        self, code: int, message: str = "lab failure", count: int = 1, stage: Stage = "data"
    ) -> None:
        """Make the next `count` transactions answer `code message` at `stage`.

        At "data" (default) smtplib raises SMTPDataError; at "rcpt" each refused
        recipient uses one of `count`, and smtplib raises SMTPRecipientsRefused once all
        recipients of a message are refused. Raises ValueError for a code that is not a
        4xx/5xx failure or a count below 1.
        """
        if not 400 <= code <= 599:
            raise ValueError(f"not an SMTP failure code: {code}")
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count}")
        with self.handler.lock:
            self.handler.failures.append(_Failure(code, message, stage, count))

    def stop(self) -> None:
        """Stop the controller's thread."""
        self.controller.stop()


def login_check(user: str, password: str) -> Any:
    """Return an aiosmtpd authenticator accepting only `user` with `password`; anything
    else is answered 535 by the server."""
    from aiosmtpd.smtp import AuthResult, LoginPassword

    def authenticate(
        server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        good = isinstance(auth_data, LoginPassword) and (
            auth_data.login,
            auth_data.password,
        ) == (user.encode(), password.encode())
        return AuthResult(success=good, handled=False)  # handled=False: the server answers

    return authenticate


def start_smtp(host: str = "127.0.0.1") -> SMTPServer:
    """Start an aiosmtpd Controller on a free port of `host` and return it.

    Raises LabDependencyError when aiosmtpd is not installed.
    """
    try:
        from aiosmtpd.controller import Controller
    except ImportError as exc:
        raise LabDependencyError(
            f"lab: aiosmtpd is missing ({exc}); install the test extras: "
            f"pip install -e '.[test]' (and {DEPS_HINT})"
        ) from exc
    handler = RecordingHandler()
    port = free_port(host)
    # decode_data=False keeps the exact bytes; Controller.start() returns once the server
    # answers its own probe connection, so no extra readiness poll is needed.
    controller = Controller(handler, hostname=host, port=port, decode_data=False)
    controller.start()
    return SMTPServer(host=host, port=port, handler=handler, controller=controller)
