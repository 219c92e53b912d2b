"""The ceiling for the intake benchmark: the same server stack as `accord serve`, doing nothing but decoding.

Litestar on uvicorn with uvloop, httptools and no access log, like `accord serve`. POST /v1/batch reads the body
and decodes it with msgspec into the same structure Accord's intake uses (a batch of raw items); POST /v1/track
decodes one message into the same message head. Both answer 200 with a body shaped like Accord's. No write-key
check, no validation of each message, no journal, no fsync.

Run: .venv/bin/python bench/bare_server.py --port 8100
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    args = parser.parse_args()
    uvicorn.run(
        app, host=args.host, port=args.port, log_level="warning", loop="uvloop", http="httptools", access_log=False
    )


if __name__ == "__main__":
    main()
