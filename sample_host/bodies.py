"""Reading request bodies with a size limit that holds while they stream in.

A declared ``Content-Length`` over the limit is refused before a byte is read; a chunked body
(no ``Content-Length``) is counted as it arrives and refused as soon as it passes the limit, so
the endpoint never holds more than the limit in memory, and answers without waiting for the rest.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import Message

from .errors import TooLarge


def _too_large(limit: int) -> TooLarge:
    return TooLarge(f"body is larger than {limit} bytes: send the few parameters needed only")


async def read_body(request: Request, limit: int) -> bytes:
    """The request's body, at most ``limit`` bytes.

    :raises TooLarge: when the declared or the streamed length passes ``limit``.
    """
    declared = request.headers.get("content-length", "").strip()
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    received = bytearray()
    async for chunk in request.stream():
        received += chunk
        if len(received) > limit:
            raise _too_large(limit)
    return bytes(received)


def replayed(request: Request, body: bytes) -> Request:
    """A request over the same scope whose body is ``body`` (already read with ``read_body``), so
    Starlette's form parser can read it again."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(request.scope, receive)
