"""SMTP delivery over STARTTLS and implicit TLS with a login, against a real aiosmtpd server."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from daemon.config.schema import SmtpNotifier
from daemon.notices.delivery.base import PermanentDeliveryError
from daemon.notices.delivery.smtp import SmtpDelivery
from tests.lab.services.common import free_port
from tests.lab.services.smtp import login_check

PASSWORD = "c0rrect-h0rse"


class _Inbox:
    def __init__(self) -> None:
        self.received: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.received.append(envelope)
        return "250 2.0.0 queued"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made with the openssl command."""
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
            *("-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture(params=["starttls", "tls"])
def secure_server(
    request: pytest.FixtureRequest, certificate: tuple[Path, Path]
) -> Iterator[tuple[str, int, _Inbox]]:
    """An SMTP server that demands TLS (STARTTLS or implicit) and a login."""
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    inbox, port = _Inbox(), free_port()
    options: dict[str, Any] = (
        {"tls_context": context, "require_starttls": True}
        if request.param == "starttls"
        # aiosmtpd does not see implicit TLS as TLS when deciding to offer AUTH.
        else {"ssl_context": context, "auth_require_tls": False}
    )
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        auth_required=True,
        authenticator=login_check("lapse", PASSWORD),
        **options,
    )
    controller.start()
    yield request.param, port, inbox
    controller.stop()


def _message() -> EmailMessage:
    message = EmailMessage()
    message["From"] = "billing@example.com"
    message["To"] = "client@example.org"
    message["Subject"] = "Payment reminder"
    message["Message-ID"] = "<tls-test@example.com>"
    message.set_content("Your invoice is due.")
    return message


def _delivery(
    security: str, port: int, cert: Path, monkeypatch: pytest.MonkeyPatch, password: str
) -> SmtpDelivery:
    monkeypatch.setenv("LAPSE_TEST_SMTP_PASSWORD", password)
    config = SmtpNotifier.model_validate(
        {
            "type": "smtp",
            "host": "127.0.0.1",
            "port": port,
            "security": security,
            "username": "lapse",
            "password": {"env": "LAPSE_TEST_SMTP_PASSWORD"},
        }
    )
    return SmtpDelivery(config, timeout=10, ssl_context=ssl.create_default_context(cafile=cert))


def test_delivery_logs_in_over_tls_and_the_server_accepts(
    secure_server: tuple[str, int, _Inbox],
    certificate: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    security, port, inbox = secure_server

    receipt = _delivery(security, port, certificate[0], monkeypatch, PASSWORD).deliver(_message())

    assert receipt.startswith("250")
    (envelope,) = inbox.received
    assert envelope.rcpt_tos == ["client@example.org"]
    assert b"Message-ID: <tls-test@example.com>" in envelope.original_content


def test_a_refused_login_is_permanent_and_never_shows_the_password(
    secure_server: tuple[str, int, _Inbox],
    certificate: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    security, port, inbox = secure_server
    delivery = _delivery(security, port, certificate[0], monkeypatch, "wrong-password")

    with pytest.raises(PermanentDeliveryError, match="535") as refused:
        delivery.deliver(_message())

    assert "wrong-password" not in str(refused.value)
    assert inbox.received == []
