"""The ceiling for the intake benchmark: the same server stack as `accord serve`, doing nothing but decoding.

uvicorn with uvloop, httptools and no access log, like `accord serve`. POST /v1/batch reads the body and decodes
it with msgspec into the same structure Accord's intake uses (a batch of raw items); POST /v1/track decodes one
message into the same message head. Both answer 200 with a body shaped like Accord's. No write-key check, no
validation of each message, no journal, no fsync.

Two fronts: ``--front litestar`` (default) routes through a Litestar app; ``--front asgi`` is a plain ASGI
callable, the ceiling for `accord serve`'s collection fast path, which also bypasses the framework for POST /v1/*.

Run: .venv/bin/python bench/bare_server.py --port 8100 [--front asgi]
"""

from __future__ import annotations

import argparse
from typing import Any

import msgspec
import uvicorn
from litestar import Litestar, Request, Response, get, post

from accord.collect.wire import BatchBody, MessageHead

_batch = msgspec.json.Decoder(BatchBody)
_message = msgspec.json.Decoder(MessageHead)
_encode = msgspec.json.Encoder().encode


def _ok(accepted: int) -> Response[bytes]:
    body = _encode({"success": True, "accepted": accepted, "duplicates": 0, "rejected": []})
    return Response(body, status_code=200, media_type="application/json")


@post("/v1/batch", status_code=200, request_max_body_size=600 * 1024)
async def batch(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Decode a batch body and acknowledge it."""
    payload = _batch.decode(await request.body())
    return _ok(len(payload.batch))


@post("/v1/track", status_code=200, request_max_body_size=600 * 1024)
async def track(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Decode one message and acknowledge it."""
    _message.decode(await request.body())
    return _ok(1)


@get("/health")
async def health() -> dict[str, str]:
    """Liveness, for the benchmark runner."""
    return {"status": "ok"}


app = Litestar(route_handlers=[batch, track, health], debug=False, openapi_config=None)

_HEADERS = [(b"content-type", b"application/json")]


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The same two endpoints (and /health) as a plain ASGI callable, without a framework."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"]
    chunks = []
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    if scope["method"] == "POST" and path == "/v1/batch":
        accepted = len(_batch.decode(b"".join(chunks)).batch)
    elif scope["method"] == "POST" and path == "/v1/track":
        _message.decode(b"".join(chunks))
        accepted = 1
    elif path == "/health":
        accepted = 0
    else:
        await send({"type": "http.response.start", "status": 404, "headers": _HEADERS})
        await send({"type": "http.response.body", "body": b"{}"})
        return
    body = _encode({"success": True, "accepted": accepted, "duplicates": 0, "rejected": []})
    headers = [*_HEADERS, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--front", choices=("litestar", "asgi"), default="litestar")
    args = parser.parse_args()
    uvicorn.run(
        app if args.front == "litestar" else asgi_app,
        host=args.host,
        port=args.port,
        log_level="warning",
        loop="uvloop",
        http="httptools",
        access_log=False,
    )


if __name__ == "__main__":
    main()
