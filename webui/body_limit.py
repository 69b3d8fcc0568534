"""A bound on request bodies: a body larger than the "api_max_request_mb" setting is answered 413
before it is read into memory (by its Content-Length, or while it streams in when it has none).

Gradio's upload route has its own bound (``max_file_size``) and is left to it.
"""

from __future__ import annotations

import json
from typing import Callable

from starlette.exceptions import HTTPException

from webui.access import Receive, Scope, Send, respond


class BodyTooLarge(HTTPException):
    """Raised from the body stream; an HTTPException, so the app's own handlers answer it as 413."""

    def __init__(self, limit: int):
        super().__init__(status_code=413, detail=too_large_message(limit))


class BodyLimit:
    def __init__(self, app: Callable, max_bytes: Callable[[], int], exempt_paths: tuple[str, ...] = ()):
        self.app = app
        self.max_bytes = max_bytes
        self.exempt_paths = exempt_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "").startswith(self.exempt_paths):
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes()
        declared = dict(scope.get("headers") or ()).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await too_large(send, limit)
            return
        received, started = 0, False

        async def counted_receive() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracked_send(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge:
            if not started:
                await too_large(send, limit)


def too_large_message(limit: int) -> str:
    return f"the request body is larger than {limit // (1024 * 1024)} MB (the api_max_request_mb setting)"


async def too_large(send: Send, limit: int) -> None:
    body = json.dumps({"detail": too_large_message(limit)})
    await respond(send, 413, body.encode("utf-8"), "application/json")
