"""Delivery through an SMTP server: plain, STARTTLS or implicit TLS, with optional login."""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from email.utils import getaddresses

from daemon.config.schema import SmtpNotifier
from daemon.config.secrets import SecretError
from daemon.notices.delivery.base import (
    Delivery,
    DeliveryError,
    PermanentDeliveryError,
    TemporaryDeliveryError,
)

DEFAULT_TIMEOUT = 30.0


class SmtpDelivery(Delivery):
    """Sends each message in its own SMTP session.

    `timeout` (seconds) bounds every network operation; `ssl_context` verifies
    the server for 'starttls' and 'tls' (the system's trust store by default).
    The password is read from its SecretRef at each login and never appears
    in logs or exception messages.
    """

    name = "smtp"

    def __init__(
        self,
        config: SmtpNotifier,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.config = config
        self.timeout = timeout
        self.ssl_context = ssl_context or ssl.create_default_context()

    def deliver(self, message: EmailMessage) -> str:
        """Send `message` to the recipients in its To and Cc headers.

        Returns the server's final reply to DATA, e.g. '250 2.0.0 Ok: queued
        as X'. Raises TemporaryDeliveryError for 4xx replies, refused
        connections and timeouts, PermanentDeliveryError for 5xx replies,
        failed logins, and messages without a usable sender or recipient.
        """
        sender, recipients = envelope(message)
        payload = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
        with self._errors_told(), self._session() as smtp:
            self._login(smtp)
            return self._transmit(smtp, sender, recipients, payload)

    def probe(self) -> str:
        """Connect, say EHLO (and STARTTLS when configured), log in when a username is
        configured, and quit, sending nothing: what `lapse check-config --deep` asks.

        Returns what was done, e.g. 'SMTP server mail:587: EHLO, STARTTLS, login as
        lapse'. Raises TemporaryDeliveryError or PermanentDeliveryError as `deliver` does.
        """
        with self._errors_told(), self._session() as smtp:
            self._login(smtp)
        steps = ["EHLO"]
        if self.config.security == "starttls":
            steps.append("STARTTLS")
        if self.config.security == "tls":
            steps.insert(0, "TLS")
        if self.config.username is not None:
            steps.append(f"login as {self.config.username}")
        return f"{self._where}: {', '.join(steps)}"

    @contextmanager
    def _errors_told(self) -> Iterator[None]:
        """Turn what smtplib and the socket raise into Temporary- or PermanentDeliveryError."""
        try:
            yield
        except DeliveryError:
            raise
        except smtplib.SMTPResponseException as error:
            # EHLO, STARTTLS or the DATA command itself refused.
            raise self._refused("session", error.smtp_code, error.smtp_error) from error
        except smtplib.SMTPServerDisconnected as error:
            raise TemporaryDeliveryError(f"{self._where}: connection lost: {error}") from error
        except smtplib.SMTPException as error:
            # Missing STARTTLS or AUTH support: a setup mismatch retries do not fix.
            raise PermanentDeliveryError(f"{self._where}: {error}") from error
        except OSError as error:
            # Refused, unreachable, timed out, TLS handshake failed: worth retrying.
            raise TemporaryDeliveryError(f"{self._where}: {error}") from error

    @property
    def _where(self) -> str:
        return f"SMTP server {self.config.host}:{self.config.port}"

    @contextmanager
    def _session(self) -> Iterator[smtplib.SMTP]:
        """Yield a connected session that has said EHLO (and started TLS when configured).

        The session is closed afterwards without letting a failed QUIT turn a
        delivered message into an error (its retry would send it twice).
        """
        smtp = self._connect()
        try:
            smtp.ehlo_or_helo_if_needed()
            if self.config.security == "starttls":
                smtp.starttls(context=self.ssl_context)
                smtp.ehlo()
            yield smtp
        finally:
            _close_quietly(smtp)

    def _connect(self) -> smtplib.SMTP:
        """Open the connection the configured security asks for; raises OSError or SMTPException."""
        host, port = self.config.host, self.config.port
        if self.config.security == "tls":
            return smtplib.SMTP_SSL(host, port, timeout=self.timeout, context=self.ssl_context)
        return smtplib.SMTP(host, port, timeout=self.timeout)

    def _login(self, smtp: smtplib.SMTP) -> None:
        """Log in when a username is configured.

        Raises PermanentDeliveryError when the password cannot be read or is
        refused (5xx), TemporaryDeliveryError for a 4xx refusal. The error is
        raised `from None` and the password is masked in the server's text,
        so neither the message nor a logged traceback can carry it.
        """
        if self.config.username is None:
            return
        password = self._password()
        try:
            smtp.login(self.config.username, password)
        except smtplib.SMTPResponseException as error:
            text = _text(error.smtp_error)
            if password:
                text = text.replace(password, "***")
            raise self._refused("login", error.smtp_code, text) from None

    def _password(self) -> str:
        """Return the configured password ('' when none); raises PermanentDeliveryError."""
        if self.config.password is None:
            return ""
        try:
            return self.config.password.reveal()
        except SecretError as error:
            raise PermanentDeliveryError(f"SMTP password: {error}") from error

    def _transmit(
        self, smtp: smtplib.SMTP, sender: str, recipients: list[str], payload: bytes
    ) -> str:
        """Run MAIL, RCPT and DATA; return the server's reply to the end of DATA.

        Raises TemporaryDeliveryError or PermanentDeliveryError on the first
        refused step, by the reply's code. One refused recipient refuses the
        message: reaching only some of a notice's recipients is not a delivery.
        """
        code, reply = smtp.mail(sender)
        if code != 250:
            raise self._refused(f"MAIL FROM:<{sender}>", code, reply)
        for address in recipients:
            code, reply = smtp.rcpt(address)
            if code not in (250, 251):
                raise self._refused(f"RCPT TO:<{address}>", code, reply)
        code, reply = smtp.data(payload)
        if code != 250:
            raise self._refused("DATA", code, reply)
        return f"{code} {_text(reply)}"

    def _refused(self, step: str, code: int, reply: bytes | str) -> DeliveryError:
        """Return the error for a refused step: permanent for 5xx, temporary otherwise."""
        kind = PermanentDeliveryError if 500 <= code < 600 else TemporaryDeliveryError
        return kind(f"{self._where}: {step} refused: {code} {_text(reply)}")


def envelope(message: EmailMessage) -> tuple[str, list[str]]:
    """Return the envelope sender (From) and recipients (To and Cc) of `message`.

    Raises PermanentDeliveryError when either is missing.
    """
    senders = [address for _name, address in getaddresses(message.get_all("From", []))]
    recipients = [
        address
        for _name, address in getaddresses([*message.get_all("To", []), *message.get_all("Cc", [])])
        if address
    ]
    if not senders or not senders[0]:
        raise PermanentDeliveryError("message has no From address")
    if not recipients:
        raise PermanentDeliveryError("message has no recipient")
    return senders[0], recipients


def _text(reply: bytes | str) -> str:
    """Return a server reply as text; servers may send any bytes."""
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply


def _close_quietly(smtp: smtplib.SMTP) -> None:
    """Say QUIT and close; any failure here comes after the message was accepted or refused."""
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()
