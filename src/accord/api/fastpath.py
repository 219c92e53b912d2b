"""A lean ASGI front for POST /v1/*: collection requests skip the framework; everything else goes to Litestar.

The collection endpoints are the hot path (tens of thousands of messages a second); the same handler also backs the
documented Litestar route, so behaviour and the OpenAPI description stay one.
"""

from __future__ import annotations

from litestar import Litestar
from litestar.types import HTTPResponseBodyEvent, HTTPResponseStartEvent, Receive, Scope, Send

from accord.api.collect import error_body, handle_collect

MAX_BODY = 600 * 1024  # a gzip body is checked again after decompression (500 KB)
_JSON_HEADERS = [(b"content-type", b"application/json")]


class CollectFastPath:
    """Serves POST /v1/{kind} directly and hands every other request (and the lifespan) to the Litestar app."""

    def __init__(self, app: Litestar) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or scope.get("method") != "POST" or not path.startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        content_encoding = authorization = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"content-encoding":
                content_encoding = value.decode("latin-1")
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk: bytes = message.get("body", b"")  # type: ignore[assignment]
            size += len(chunk)
            if size > MAX_BODY:
                await _respond(send, 413, error_body("payload_too_large", f"request body is over {MAX_BODY} bytes"))
                return
            chunks.append(chunk)
            more = bool(message.get("more_body", False))
        state = self.app.state
        status, body = await handle_collect(
            state.platform, state.writer, path[4:], b"".join(chunks), content_encoding, authorization
        )
        await _respond(send, status, body)


async def _respond(send: Send, status: int, body: bytes) -> None:
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": status,
        "headers": [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())],
    }
    await send(start)
    done: HTTPResponseBodyEvent = {"type": "http.response.body", "body": body, "more_body": False}
    await send(done)
