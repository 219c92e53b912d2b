"""A lean ASGI front for the two hottest commerce calls (POST /api/v1/reservations, GET /api/v1/availability):
they skip the framework's routing, guards and serialisation layers; everything else goes to the next app.

Behaviour equals the documented Litestar routes in `api/commerce.py` (same functions, same error shape); those
routes remain the OpenAPI description and serve any request this front does not take."""

from __future__ import annotations

import asyncio
import hmac
import logging
from typing import Any
from urllib.parse import parse_qs

import msgspec
from litestar.types import ASGIApp, Receive, Scope, Send

from accord.api.collect import error_body
from accord.api.commerce import ReservationIn, reserve_args
from accord.commerce import service as commerce
from accord.commerce.desk import ReservationDesk
from accord.commerce.errors import CommerceError

MAX_BODY = 64 * 1024
_log = logging.getLogger(__name__)
_JSON = (b"content-type", b"application/json")
_decode_reservation = msgspec.json.Decoder(ReservationIn).decode
_encode = msgspec.json.Encoder().encode


class _BadRequest(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class CommerceFastPath:
    """Serves the two hot commerce endpoints directly; hands everything else (and the lifespan) to APP."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        inner: Any = app
        while not hasattr(inner, "state") and hasattr(inner, "app"):
            inner = inner.app  # the Litestar app (its state holds the platform, desk and token)
        self.litestar = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path, method = scope.get("path", ""), scope.get("method")
            if path == "/api/v1/reservations" and method == "POST":
                await self._answer(send, self._reserve, scope, receive, 201)
                return
            if path == "/api/v1/availability" and method == "GET":
                await self._answer(send, self._availability, scope, receive, 200)
                return
        await self.app(scope, receive, send)

    async def _answer(self, send: Send, handler: Any, scope: Scope, receive: Receive, ok: int) -> None:
        try:
            self._authorise(scope)
            status, body = ok, _encode(await handler(scope, receive))
        except _BadRequest as exc:
            status, body = exc.status, error_body(exc.code, exc.message)
        except CommerceError as exc:
            status, body = exc.status, error_body(exc.code, exc.message)
        except Exception as exc:  # never a bare 500 without the error shape
            _log.exception("unhandled error in the commerce fast path")
            status, body = 500, error_body("internal_error", f"{type(exc).__name__}: the server failed to handle this")
        headers = [_JSON, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    def _authorise(self, scope: Scope) -> None:
        expected: str = self.litestar.state.admin_token
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, token = value.decode("latin-1").partition(" ")
                if scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), expected.encode()):
                    return
        raise _BadRequest(401, "unauthorized", "a valid admin bearer token is required (Authorization: Bearer ...)")

    async def _reserve(self, scope: Scope, receive: Receive) -> dict[str, Any]:
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _BadRequest(400, "bad_request", "the client went away")
            chunk: bytes = message.get("body", b"")  # type: ignore[assignment]
            size += len(chunk)
            if size > MAX_BODY:
                raise _BadRequest(413, "payload_too_large", f"request body is over {MAX_BODY} bytes")
            chunks.append(chunk)
            more = bool(message.get("more_body", False))
        try:
            data = _decode_reservation(b"".join(chunks))
        except msgspec.DecodeError as exc:
            raise _BadRequest(400, "bad_request", f"invalid reservation: {exc}") from exc
        platform = self.litestar.state.platform
        key = data.idempotency_key
        if key is None:
            key = next((v.decode("latin-1") for n, v in scope["headers"] if n == b"idempotency-key"), None)
        try:
            args = reserve_args(platform, data, key)
        except Exception as exc:  # an invalid customer identifier
            status = getattr(exc, "status_code", 400)
            code = (getattr(exc, "extra", None) or {}).get("code", "bad_request")
            raise _BadRequest(status, code, str(getattr(exc, "detail", exc))) from exc
        desk: ReservationDesk = self.litestar.state.commerce_desk
        held = await asyncio.wrap_future(desk.submit(*args))
        return held.as_dict()

    async def _availability(self, scope: Scope, receive: Receive) -> dict[str, Any]:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))

        def one(name: str, default: str | None = None) -> str:
            values = query.get(name)
            if not values:
                if default is None:
                    raise _BadRequest(400, "bad_request", f"missing query parameter {name!r}")
                return default
            return values[0]

        try:
            sku, lat, lon = one("sku"), float(one("lat")), float(one("lon"))
            limit = int(one("limit", "5"))
            radius = query.get("radius_km")
            radius_km = float(radius[0]) if radius else None
        except ValueError as exc:
            raise _BadRequest(400, "bad_request", f"invalid query parameter: {exc}") from exc
        kinds = tuple(k.strip() for k in one("kind", "store").split(",") if k.strip())
        state = self.litestar.state.platform.state
        return {"sku": sku, "locations": commerce.availability(state, sku, lat, lon, limit, kinds, radius_km)}
