"""Reading request bodies with a size limit that holds while they stream in.

A declared ``Content-Length`` over the limit is refused before a byte is read; a chunked body
(no ``Content-Length``) is counted as it arrives and refused as soon as it passes the limit, so
the endpoint never holds more than the limit in memory, and answers without waiting for the rest.
``read_body`` does this for the endpoints that read bodies themselves (inbound postbacks, the API);
``BodyLimitMiddleware`` does it for every request, forms included, with a larger limit.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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


class BodyLimitMiddleware:
    """Refuses any request body over ``limit`` bytes with a 413: a declared length before the app
    runs, a streamed one as soon as it passes the limit (the app's read fails with ``TooLarge``,
    and this answers for it unless it has begun answering)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length", b"").strip()
        if declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, receive, send)
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _too_large(self.limit)
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except TooLarge:
            if started:
                raise
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = str(_too_large(self.limit))
        await PlainTextResponse(message + "\n", status_code=413)(scope, receive, send)
