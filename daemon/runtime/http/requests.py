"""Reading a request body safely: a declared, sane length, read within the timeouts.

`http.server` leaves the body to the handler; a `Content-Length` of `abc` or `-1`
would raise inside it (the client then sees a dropped connection) or read until the
client closes. Here every malformed length gets its own 4xx answer at once.
"""

from __future__ import annotations

from email.message import Message
from io import BufferedIOBase

from daemon.domain.errors import LapseError


class BodyError(LapseError):
    """The request body cannot be read as declared; `status` is the HTTP answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def declared_length(headers: Message, limit: int) -> int:
    """Return the body length a request declares.

    Raises BodyError: 411 without a Content-Length (chunked bodies are not taken),
    400 for a value that is not a plain decimal or appears twice with different
    values, 413 beyond `limit` bytes.
    """
    if headers.get("Transfer-Encoding") is not None:
        raise BodyError(411, "Transfer-Encoding is not accepted; send a Content-Length")
    values = headers.get_all("Content-Length") or []
    if not values:
        raise BodyError(411, "a Content-Length header is required")
    if len(set(values)) > 1:
        raise BodyError(400, "conflicting Content-Length headers")
    text = values[0].strip()
    # isdigit() alone takes other scripts' digits and int() would parse them; ASCII only.
    if not (text.isascii() and text.isdigit()) or len(text) > 12:
        raise BodyError(400, "Content-Length is not a non-negative whole number")
    length = int(text)
    if length > limit:
        raise BodyError(413, f"body over {limit} bytes")
    return length


def read_body(headers: Message, stream: BufferedIOBase, limit: int) -> bytes:
    """Read exactly the declared body from `stream`.

    Raises BodyError as declared_length does, and 400 when the client closes
    before sending it all. A client that stops sending makes the socket's read
    timeout raise TimeoutError (an OSError), which ends the connection.
    """
    length = declared_length(headers, limit)
    body = stream.read(length)
    if len(body) != length:
        raise BodyError(400, f"body ended after {len(body)} of {length} bytes")
    return body
