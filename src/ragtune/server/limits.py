"""Bounded request bodies: a declared Content-Length over the limit is refused before a byte is read, and a body
sent without one (chunked) is counted as it streams in and cut off once it passes the limit."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ragtune.server.errors import error_response


class _TooLarge(Exception):
    """Raised into the app from ``receive`` when the streamed body passes the limit."""


class BodyLimit:
    """ASGI middleware answering 413, in the OpenAI error shape, to bodies over ``max_bytes``.

    >>> app.add_middleware(BodyLimit, max_bytes=512 * 1024)
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        message = f"request body over the {self.max_bytes // 1024} KB limit; raise [server] max_request_kb or send less"
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await error_response(413, message)(scope, receive, send)
            return
        received = 0
        too_large = False
        started = False

        async def counted_receive() -> Message:
            nonlocal received, too_large
            msg = await receive()
            if msg["type"] == "http.request":
                received += len(msg.get("body", b""))
                if received > self.max_bytes:
                    too_large = True
                    raise _TooLarge
            return msg

        async def guarded_send(msg: Message) -> None:
            nonlocal started
            if too_large:
                return  # whatever the app makes of the cut-off body is dropped; the 413 below answers instead
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not too_large:
                raise
        if too_large and not started:
            await error_response(413, message)(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", ()):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
