"""The http source against a real HTTP server on loopback."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from daemon.billing.base import BillingError
from daemon.billing.dispatch import create_source
from daemon.billing.http import HttpSource
from daemon.billing.samples import write_sample_billing
from daemon.config.schema import HttpBilling
from tests.unit.billing.helpers import nested_account

TOKEN = "s3cret-token-4711"


class _BillingServer(ThreadingHTTPServer):
    """Answers every GET with `status` and `body`; records each request's headers."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.status = 200
        self.body = json.dumps({"accounts": []}).encode()
        self.delay: threading.Event | None = None
        self.seen: list[dict[str, str]] = []

    def url(self, path: str = "/lapse/accounts") -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


class _Handler(BaseHTTPRequestHandler):
    server: _BillingServer

    def do_GET(self) -> None:
        self.server.seen.append(dict(self.headers))
        if self.server.delay is not None:
            self.server.delay.wait(5)  # outlasts the client's timeout
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.server.body)))
        self.end_headers()
        self.wfile.write(self.server.body)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output clean."""


@pytest.fixture
def server() -> Iterator[_BillingServer]:
    billing = _BillingServer()
    # A short poll interval: shutdown() waits up to one interval.
    thread = threading.Thread(target=billing.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield billing
    if billing.delay is not None:
        billing.delay.set()
    billing.shutdown()
    billing.server_close()


def http_source(url: str, auth: dict[str, Any] | None = None, timeout: str = "5s") -> HttpSource:
    """Return the http source the config builds for `url` and `auth`."""
    config = HttpBilling.model_validate(
        {"type": "http", "url": url, "auth": auth, "timeout": timeout}
    )
    source = create_source(config)
    assert isinstance(source, HttpSource)
    return source


@pytest.fixture
def bearer(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("LAPSE_TEST_TOKEN", TOKEN)
    return {"type": "bearer", "token": {"env": "LAPSE_TEST_TOKEN"}}


def test_http_source_sends_the_bearer_token_and_reads_the_document(
    server: _BillingServer, bearer: dict[str, Any], tmp_path: Path
) -> None:
    sample = tmp_path / "billing.json"
    write_sample_billing(sample, datetime(2026, 3, 1, tzinfo=UTC))
    server.body = sample.read_bytes()

    result = http_source(server.url(), bearer).fetch_all()

    assert result.errors == ()
    assert len(result.snapshots) == 9
    (headers,) = server.seen
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert headers["Accept"] == "application/json"


def test_http_source_sends_basic_credentials(server: _BillingServer, tmp_path: Path) -> None:
    password = tmp_path / "password"
    password.write_text("hunter2\n")
    auth = {"type": "basic", "username": "lapse", "password": {"file": str(password)}}

    http_source(server.url(), auth).fetch_all()

    (headers,) = server.seen
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"lapse:hunter2").decode()


def test_http_source_without_auth_sends_no_authorization(server: _BillingServer) -> None:
    server.body = json.dumps([nested_account("acme")]).encode()  # a bare list is fine too

    (acme,) = http_source(server.url()).fetch_all().snapshots

    assert acme.account_id == "acme"
    assert "Authorization" not in server.seen[0]


def test_http_malformed_account_is_skipped_naming_it(server: _BillingServer) -> None:
    bad = nested_account("bad", currency="euro")
    server.body = json.dumps({"accounts": [nested_account("acme"), bad]}).encode()

    result = http_source(server.url()).fetch_all()

    assert [s.account_id for s in result.snapshots] == ["acme"]
    (error,) = result.errors
    assert (error.source, error.row, error.field) == (server.url(), "#1 (account bad)", "currency")


def test_http_401_is_a_billing_error_without_the_token(
    server: _BillingServer, bearer: dict[str, Any]
) -> None:
    server.status = 401

    with pytest.raises(BillingError, match=r"answered 401 Unauthorized") as refused:
        http_source(server.url(), bearer).fetch_all()

    assert server.url() in str(refused.value)
    assert TOKEN not in str(refused.value)


def test_http_redirect_is_not_followed(server: _BillingServer, bearer: dict[str, Any]) -> None:
    # Following it could carry the token to another host.
    server.status = 302

    with pytest.raises(BillingError, match=r"answered 302"):
        http_source(server.url(), bearer).fetch_all()
    assert len(server.seen) == 1


def test_http_invalid_json_is_a_billing_error(server: _BillingServer) -> None:
    server.body = b"<html>login</html>"
    with pytest.raises(BillingError, match=r"did not return JSON: Expecting value at line 1"):
        http_source(server.url()).fetch_all()

    server.body = b'{"customers": []}'
    with pytest.raises(BillingError, match=r"expected a JSON object with an 'accounts' list"):
        http_source(server.url()).fetch_all()


def test_http_unreachable_or_slow_endpoint_is_a_billing_error(server: _BillingServer) -> None:
    server.delay = threading.Event()
    with pytest.raises(BillingError, match=r"billing request failed"):
        http_source(server.url(), timeout="1s").fetch_all()

    with pytest.raises(BillingError, match=r"http://127.0.0.1:1/x: billing request failed"):
        http_source("http://127.0.0.1:1/x").fetch_all()


def test_http_unreadable_secret_is_a_billing_error(
    server: _BillingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LAPSE_TEST_TOKEN", raising=False)
    auth = {"type": "bearer", "token": {"env": "LAPSE_TEST_TOKEN"}}

    with pytest.raises(BillingError, match=r"environment variable LAPSE_TEST_TOKEN is not set"):
        http_source(server.url(), auth).fetch_all()
    assert server.seen == []


def test_http_url_credentials_never_show_in_errors(server: _BillingServer) -> None:
    server.status = 500
    url = server.url().replace("http://", "http://user:pw-in-url@")

    with pytest.raises(BillingError, match=r"answered 500") as failed:
        http_source(url).fetch_all()

    assert "pw-in-url" not in str(failed.value)
