"""The HTTP listener answers malformed requests with a 4xx at once, and no client holds a thread."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from daemon.config.load import validate_config
from daemon.runtime.app import build_app
from daemon.runtime.http import server as http_server
from daemon.runtime.http.server import LapseHTTP
from daemon.runtime.http.signatures import sign_hmac, sign_stripe
from daemon.runtime.scheduler import LapseScheduler
from daemon.runtime.service import http_listener

SECRET = "whsec_hostile_test"


@pytest.fixture
def listener(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LapseHTTP]:
    """A listener on a fresh daemon (empty billing, SQLite), deadlines shortened for the test."""
    monkeypatch.setattr(http_server, "READ_TIMEOUT", 1.0)
    monkeypatch.setattr(http_server, "CONNECTION_TIMEOUT", 3.0)
    (tmp_path / "secret").write_text(SECRET)
    (tmp_path / "billing.json").write_text('{"accounts": []}')
    raw = {
        "state": {"url": f"sqlite:///{tmp_path / 'state.db'}"},
        "billing": {"type": "file", "path": "billing.json"},
        "backup": {"store": {"type": "local", "path": "backups"}},
        "notices": {"notifier": {"type": "outbox", "path": "outbox"}},
        "webhooks": {"stripe_secret": {"file": "secret"}, "hmac_secret": {"file": "secret"}},
    }
    app = build_app(validate_config(raw, "test", tmp_path))
    scheduler = LapseScheduler(app.engine, app.lifecycle, timedelta(hours=1), app.runner)
    scheduler.last_sync = app.clock()  # /healthz answers 503 until a sync succeeded
    server = http_listener(app, scheduler, "127.0.0.1:0")
    server.start()
    yield server
    server.stop()
    app.engine.dispose()


def _raw(listener: LapseHTTP, request: bytes, timeout: float = 5.0) -> bytes:
    """Send `request` as is and return what the server answered before closing."""
    with socket.create_connection(("127.0.0.1", listener.port), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


@pytest.mark.parametrize(
    ("length", "status"),
    [(b"abc", 400), (b"-1", 400), (b"+5", 400), (b"\xd9\xa1", 400), (b"99999999999", 413)],
)
def test_a_malformed_content_length_gets_a_4xx_at_once(
    listener: LapseHTTP, length: bytes, status: int
) -> None:
    request = (
        b"POST /webhooks/generic HTTP/1.1\r\nHost: x\r\nContent-Length: " + length + b"\r\n\r\n{}"
    )
    started = time.monotonic()
    answer = _raw(listener, request)
    assert _status(answer) == status
    assert time.monotonic() - started < 0.9  # before any read timeout could fire


def test_a_post_without_a_length_gets_411(listener: LapseHTTP) -> None:
    answer = _raw(listener, b"POST /webhooks/generic HTTP/1.1\r\nHost: x\r\n\r\n")
    assert _status(answer) == 411
    chunked = (
        b"POST /webhooks/generic HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\n{}\r\n0\r\n\r\n"
    )
    assert _status(_raw(listener, chunked)) == 411


def test_an_http_1_1_request_without_a_host_gets_400(listener: LapseHTTP) -> None:
    """RFC 9112 3.2: a server answers 400 to an HTTP/1.1 request that lacks Host."""
    answer = _raw(listener, b"POST /webhooks/generic HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}")
    assert _status(answer) == 400


@pytest.mark.parametrize("path", ["/webhooks/generic", "/webhooks/stripe"])
def test_a_non_ascii_signature_gets_401(listener: LapseHTTP, path: str) -> None:
    body = b'{"id": "e1", "account_id": "a1"}'
    header = (
        b"X-Lapse-Signature: sha256=\xe9\xe9"
        if "generic" in path
        else b"Stripe-Signature: t=1,v1=\xe9"
    )
    request = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n".encode()
        + header
        + b"\r\n\r\n"
        + body
    )
    assert _status(_raw(listener, request)) == 401


@pytest.mark.parametrize("data", [[], "x", 5, None])
def test_a_signed_stripe_event_whose_data_is_not_an_object_gets_400(
    listener: LapseHTTP, data: object
) -> None:
    body = json.dumps({"id": "evt_1", "type": "invoice.paid", "data": data}).encode()
    signature = sign_stripe(body, SECRET, int(datetime.now(UTC).timestamp()))
    answer = httpx.post(
        f"http://127.0.0.1:{listener.port}/webhooks/stripe",
        content=body,
        headers={"Stripe-Signature": signature},
        timeout=5,
    )
    assert answer.status_code == 400
    assert "'data' is not an object" in answer.text


def test_a_signed_generic_event_that_is_not_an_object_gets_400(listener: LapseHTTP) -> None:
    body = b"[1, 2]"
    answer = httpx.post(
        f"http://127.0.0.1:{listener.port}/webhooks/generic",
        content=body,
        headers={"X-Lapse-Signature": sign_hmac(body, SECRET)},
        timeout=5,
    )
    assert answer.status_code == 400


def _health(listener: LapseHTTP) -> int:
    return httpx.get(f"http://127.0.0.1:{listener.port}/healthz", timeout=2).status_code


@pytest.mark.parametrize(
    "half",
    [
        # half a body
        b'POST /webhooks/generic HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"id"',
        b"POST /webhooks/generic HTTP/1.1\r\nHost: x\r\nX-Lapse-Sig",  # half the headers
        b"POST /webhooks/gen",  # half the request line
    ],
)
def test_half_a_request_is_dropped_within_the_timeout_and_others_are_served(
    listener: LapseHTTP, half: bytes
) -> None:
    with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as sock:
        sock.sendall(half)
        started = time.monotonic()
        assert _health(listener) == 200  # served while the half request waits
        sock.recv(65536)  # returns when the server answers or closes
        assert time.monotonic() - started < 2.5  # the 1 s read timeout, with slack


def test_a_trickling_client_is_cut_at_the_connection_deadline(listener: LapseHTTP) -> None:
    """A byte every quarter second never trips the 1 s read timeout; the 3 s connection
    deadline cuts it, and the listener serves others meanwhile. The bytes go from a thread
    of their own and the cut is timed by another: a health check that is slow on a loaded
    machine delays neither (sent between the checks, a byte once came 1 s late and the
    read timeout cut the connection first)."""
    body_length = 1000
    with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as sock:
        sock.sendall(
            b"POST /webhooks/generic HTTP/1.1\r\nHost: x\r\n"
            + f"Content-Length: {body_length}\r\n\r\n".encode()
        )
        started = time.monotonic()
        cut = threading.Event()
        cut_at: list[float] = []

        def trickle() -> None:
            for _ in range(body_length):
                try:
                    sock.sendall(b" ")
                except OSError:
                    return
                if cut.wait(0.25):
                    return

        def await_cut() -> None:
            # The server's answer, or b"" as it closes, or a reset: cut either way.
            with contextlib.suppress(OSError):
                sock.recv(65536)
            cut_at.append(time.monotonic())
            cut.set()

        threads = [threading.Thread(target=work, daemon=True) for work in (trickle, await_cut)]
        for thread in threads:
            thread.start()
        while not cut.wait(0.5) and time.monotonic() - started < 10:
            assert _health(listener) == 200
        for thread in threads:
            thread.join(timeout=10)
    assert cut_at, "the trickling connection was never cut"
    assert 2.5 < cut_at[0] - started < 5.0  # the 3 s connection deadline, not 1000 x 0.25 s


@pytest.mark.parametrize("account", ["..", ".", "a/b", "a\x00b", "x" * 65])
def test_a_signed_event_naming_an_impossible_account_gets_400(
    listener: LapseHTTP, account: str
) -> None:
    body = json.dumps({"id": "e-bad", "account_id": account}).encode()
    answer = httpx.post(
        f"http://127.0.0.1:{listener.port}/webhooks/generic",
        content=body,
        headers={"X-Lapse-Signature": sign_hmac(body, SECRET)},
        timeout=5,
    )
    assert answer.status_code == 400
    assert answer.text.startswith("account_id: expected ")


def test_a_flood_of_idle_connections_is_refused_past_the_limit(
    listener: LapseHTTP, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Connections past MAX_CONNECTIONS get 503 at once instead of a thread each; once the
    idle ones are cut at their deadline, the listener serves again."""
    # Long enough deadlines for every idle connection to be accepted and held.
    monkeypatch.setattr(http_server, "READ_TIMEOUT", 4.0)
    monkeypatch.setattr(http_server, "CONNECTION_TIMEOUT", 4.0)
    idle = []
    try:
        for _ in range(http_server.MAX_CONNECTIONS):
            sock = socket.create_connection(("127.0.0.1", listener.port), timeout=10)
            sock.sendall(
                b"POST /webhooks/generic HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n"
            )
            idle.append(sock)
        time.sleep(1.0)  # let the server accept them all
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as extra:
            extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = extra.recv(65536)
        assert _status(answer) == 503
        assert time.monotonic() - started < 0.5
        wait_until = time.monotonic() + 10
        while time.monotonic() < wait_until:
            try:
                if _health(listener) == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        assert _health(listener) == 200
    finally:
        for sock in idle:
            sock.close()
