"""Stand-in for DirectAdmin's legacy HTTP API on loopback: CMD_API_SHOW_USER_CONFIG and
CMD_API_SELECT_USERS, behind Basic auth.

Follows the legacy API's documented conventions
(https://docs.directadmin.dev/developer/api/legacy-api.html, http://directadmin.com/api.html):
Basic authentication of "username:password"; answers url-encoded, `error=0&text=...`
on success and `error=1&text=...&details=...` on failure, both with HTTP 200;
CMD_API_SHOW_USER_CONFIG (GET, `user=`) answers the user's settings url-encoded,
`suspended=yes|no` among them. CMD_API_SELECT_USERS (POST) takes `select0=USER` with
one of `dosuspend`, `dounsuspend` or `delete` (the last with `confirmed=Confirm`), and
`location=CMD_SELECT_USERS`, as API::DirectAdmin uses them
(https://metacpan.org/pod/API::DirectAdmin): the search found no DirectAdmin page
listing these form values, so the stand-in's failure texts are its own. Unknown form
values, a missing `select0`, an unknown user, suspending a suspended user and
unsuspending an active one all fail with `error=1`. A wrong password answers 401.

Users live in STATE/users/USER.json (`home`, `domain`, `suspended`); deleting one
removes its home and its Unix user, as DirectAdmin does. Every request is appended to
STATE/requests.log as [method, path, form].
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

ADMIN = "admin"
SELECT_KEYS = {"location", "select0", "dosuspend", "dounsuspend", "delete", "confirmed"}


class DirectAdmin:
    """The panel's state under `state` and the answers it gives."""

    def __init__(self, state: Path, password: str) -> None:
        self.state = state
        self.password = password
        # When set, dosuspend answers success and changes nothing: a panel whose answer
        # cannot be taken for its effect.
        self.ignores_suspend = False
        (state / "users").mkdir(parents=True, exist_ok=True)

    def user(self, name: str) -> dict[str, str] | None:
        path = self.state / "users" / f"{name}.json"
        if "/" in name or not path.is_file():
            return None
        return dict(json.loads(path.read_text()))

    def save(self, name: str, data: dict[str, str]) -> None:
        (self.state / "users" / f"{name}.json").write_text(json.dumps(data))

    def requests(self) -> list[list[object]]:
        log = self.state / "requests.log"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    def show_user_config(self, query: dict[str, str]) -> dict[str, str]:
        name = query.get("user", "")
        data = self.user(name)
        if data is None:
            return _failure("Unable to show user config", f"User {name} does not exist")
        return {"username": name, "domain": data["domain"], "suspended": data["suspended"]}

    def select_users(self, form: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(form) - SELECT_KEYS)
        if unknown:
            return _failure("Invalid request", f"Unknown form values: {', '.join(unknown)}")
        actions = [key for key in ("dosuspend", "dounsuspend", "delete") if key in form]
        if "select0" not in form or len(actions) != 1:
            return _failure("Invalid request", "select0 and one of dosuspend, dounsuspend, delete")
        name, action = form["select0"], actions[0]
        data = self.user(name)
        if data is None:
            return _failure("Error with the users", f"User {name} does not exist")
        if action == "dosuspend":
            if data["suspended"] == "yes":
                return _failure("Error with the users", f"User {name} is already suspended")
            if not self.ignores_suspend:
                self.save(name, data | {"suspended": "yes"})
            return {"error": "0", "text": "Success", "details": f"{name} suspended"}
        if action == "dounsuspend":
            if data["suspended"] != "yes":
                return _failure("Error with the users", f"User {name} is not suspended")
            self.save(name, data | {"suspended": "no"})
            return {"error": "0", "text": "Success", "details": f"{name} unsuspended"}
        if form.get("confirmed") != "Confirm" or form["delete"] != "yes":
            return _failure("Invalid request", "delete needs delete=yes and confirmed=Confirm")
        shutil.rmtree(data["home"], ignore_errors=True)
        subprocess.run(["userdel", name], check=False, capture_output=True)
        (self.state / "users" / f"{name}.json").unlink()
        return {"error": "0", "text": "Users deleted", "details": name}


def _failure(text: str, details: str) -> dict[str, str]:
    return {"error": "1", "text": text, "details": details}


@contextmanager
def serve(panel: DirectAdmin) -> Iterator[str]:
    """Run the stand-in on a free loopback port; yields its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def _authorized(self) -> bool:
            expected = base64.b64encode(f"{ADMIN}:{panel.password}".encode()).decode()
            return self.headers.get("Authorization") == f"Basic {expected}"

        def _answer(self, method: str, form: dict[str, str]) -> None:
            path = urlsplit(self.path).path
            with open(panel.state / "requests.log", "a") as log:
                log.write(json.dumps([method, path, form]) + "\n")
            if not self._authorized():
                self._send(401, "error=1&text=Authentication required")
                return
            if method == "GET" and path == "/CMD_API_SHOW_USER_CONFIG":
                self._send(200, urlencode(panel.show_user_config(form)))
            elif method == "POST" and path == "/CMD_API_SELECT_USERS":
                self._send(200, urlencode(panel.select_users(form)))
            else:
                self._send(404, "error=1&text=Unknown command")

        def _send(self, status: int, body: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

        def do_GET(self) -> None:
            query = parse_qs(urlsplit(self.path).query, keep_blank_values=True)
            self._answer("GET", {key: values[-1] for key, values in query.items()})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            form = parse_qs(self.rfile.read(length).decode(), keep_blank_values=True)
            self._answer("POST", {key: values[-1] for key, values in form.items()})

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
