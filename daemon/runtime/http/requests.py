"""Reading a request body safely: a declared, sane length, read within the timeouts.

The server (uvicorn, with h11) already answers 400 to a `Content-Length` that is not
a number; a body sent chunked, or too long, or none declared, is refused here, each
with its own 4xx answer before a byte of it is read. The deadlines of
daemon.runtime.http.serving bound the reading itself.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.requests import Request

from daemon.domain.errors import LapseError


class BodyError(LapseError):
    """The request body cannot be read as declared; `status` is the HTTP answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def declared_length(headers: Headers, limit: int) -> int:
    """Return the body length a request declares.

    Raises BodyError: 411 without a Content-Length (chunked bodies are not taken),
    400 for a value that is not a plain decimal or appears twice with different
    values, 413 beyond `limit` bytes.
    """
    if headers.get("Transfer-Encoding") is not None:
        raise BodyError(411, "Transfer-Encoding is not accepted; send a Content-Length")
    values = headers.getlist("Content-Length")
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


async def read_body(request: Request, limit: int) -> bytes:
    """Read exactly the declared body of `request`.

    Raises BodyError as declared_length does, and 400 when the client closes
    before sending it all; ClientDisconnect when the connection was cut (a client
    that stopped sending, at the server's read deadline).
    """
    length = declared_length(request.headers, limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > length:
            break
    if len(body) != length:
        raise BodyError(400, f"body ended after {len(body)} of {length} bytes")
    return bytes(body)
