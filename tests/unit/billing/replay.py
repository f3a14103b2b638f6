"""A local HTTP server replaying recorded billing-API responses, checking each request.

Hosted billing APIs (WHMCS, Stripe) cannot run here, so their answers are
replayed from files under recorded/; the server also checks what Lapse sends
(credentials, actions, paging) and answers as the real API does when it is wrong.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

RECORDED = Path(__file__).parent / "recorded"

# (method, path, query or form fields, headers) -> (status, JSON body)
Responder = Callable[[str, str, dict[str, str], dict[str, str]], tuple[int, Any]]


def recorded(name: str) -> Any:
    """The recorded responses of one API (recorded/<name>.json)."""
    return json.loads((RECORDED / f"{name}.json").read_text())


@contextmanager
def replay(responder: Responder) -> Iterator[tuple[str, list[dict[str, str]]]]:
    """Serve `responder` on loopback; yields (base URL, the fields of each request)."""
    seen: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, fields: dict[str, str]) -> None:
            url = urlsplit(self.path)
            seen.append({"_path": url.path, **fields})
            status, body = responder(self.command, url.path, fields, dict(self.headers))
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            query = parse_qs(urlsplit(self.path).query)
            self._answer({key: values[-1] for key, values in query.items()})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            form = parse_qs(self.rfile.read(length).decode())
            self._answer({key: values[-1] for key, values in form.items()})

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
