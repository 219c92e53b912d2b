"""A lean ASGI front for the hottest calls of stores, offers and loyalty: availability, reservations, coupon
validate/redeem, points earn/burn. They skip the framework's routing, guards and serialisation layers (a third to
a half of their CPU time); everything else goes to the next app.

Behaviour equals the documented Litestar routes in `api/commerce.py`, `api/offers.py` and `api/loyalty.py` (the
same handler functions, the same error shape); those routes remain the OpenAPI description and serve any request
this front does not take."""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

import msgspec
from litestar.types import ASGIApp, Receive, Scope, Send

from accord.api.collect import error_body
from accord.api.commerce import ReservationIn, reserve_args
from accord.api.loyalty import BurnIn, EarnIn, burn_points, earn_points
from accord.api.offers import CouponIn, redeem_coupon, validate_coupon
from accord.commerce import service as commerce
from accord.commerce.desk import ReservationDesk
from accord.commerce.errors import CommerceError

MAX_BODY = 64 * 1024
_log = logging.getLogger(__name__)
_JSON = (b"content-type", b"application/json")
_decode_reservation = msgspec.json.Decoder(ReservationIn).decode
_decode_coupon = msgspec.json.Decoder(CouponIn).decode
_decode_earn = msgspec.json.Decoder(EarnIn).decode
_decode_burn = msgspec.json.Decoder(BurnIn).decode
_encode = msgspec.json.Encoder().encode
_LOYALTY_WRITE = re.compile(r"^/api/v1/loyalty/([^/]+)/(earn|burn)$")
Answer = tuple[int, bytes]  # HTTP status, JSON body
Handler = Callable[[Scope, Receive], Awaitable[Answer]]


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
        handler = self._route(scope["path"], scope.get("method")) if scope["type"] == "http" else None
        if handler is None:
            await self.app(scope, receive, send)
            return
        try:
            self._authorise(scope)
            status, body = await handler(scope, receive)
        except _BadRequest as exc:
            status, body = exc.status, error_body(exc.code, exc.message)
        except CommerceError as exc:
            status, body = exc.status, error_body(exc.code, exc.message)
        except Exception as exc:  # never a bare 500 without the error shape
            _log.exception("unhandled error in the commerce fast path")
            status, body = 500, error_body("internal_error", f"{type(exc).__name__}: the server failed to handle this")
        await _send(send, status, body)

    def _route(self, path: str, method: object) -> Handler | None:
        """The handler of PATH and METHOD, or None when this front does not take the request."""
        if method == "GET":
            return self._availability if path == "/api/v1/availability" else None
        if method != "POST":
            return None
        if path == "/api/v1/reservations":
            return self._reserve
        if path == "/api/v1/coupons/validate":
            return self._validate
        if path == "/api/v1/coupons/redeem":
            return self._redeem
        match = _LOYALTY_WRITE.match(path)
        if match is None:
            return None
        profile_id, action = match.group(1), match.group(2)

        async def points(scope: Scope, receive: Receive) -> Answer:
            platform, body = self.litestar.state.platform, await _body(receive)
            if action == "earn":
                return await earn_points(platform, profile_id, _decoded(_decode_earn, body, "earn request"))
            return await burn_points(platform, profile_id, _decoded(_decode_burn, body, "burn request"))

        return points

    async def _validate(self, scope: Scope, receive: Receive) -> Answer:
        data = _decoded(_decode_coupon, await _body(receive), "coupon")
        return await validate_coupon(self.litestar.state.platform, data)

    async def _redeem(self, scope: Scope, receive: Receive) -> Answer:
        data = _decoded(_decode_coupon, await _body(receive), "coupon")
        return await redeem_coupon(self.litestar.state.platform, data, _header(scope, b"idempotency-key"))

    def _authorise(self, scope: Scope) -> None:
        expected: str = self.litestar.state.admin_token
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, token = value.decode("latin-1").partition(" ")
                if scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), expected.encode()):
                    return
        raise _BadRequest(401, "unauthorized", "a valid admin bearer token is required (Authorization: Bearer ...)")

    async def _reserve(self, scope: Scope, receive: Receive) -> Answer:
        data = _decoded(_decode_reservation, await _body(receive), "reservation")
        platform = self.litestar.state.platform
        key = data.idempotency_key
        if key is None:
            key = _header(scope, b"idempotency-key")
        try:
            args = reserve_args(platform, data, key)
        except Exception as exc:  # an invalid customer identifier
            status = getattr(exc, "status_code", 400)
            code = (getattr(exc, "extra", None) or {}).get("code", "bad_request")
            raise _BadRequest(status, code, str(getattr(exc, "detail", exc))) from exc
        desk: ReservationDesk = self.litestar.state.commerce_desk
        held = await asyncio.wrap_future(desk.submit(*args))
        return 201, _encode(held.as_dict())

    async def _availability(self, scope: Scope, receive: Receive) -> Answer:
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
        found = commerce.availability(state, sku, lat, lon, limit, kinds, radius_km)
        return 200, _encode({"sku": sku, "locations": found})


async def _body(receive: Receive) -> bytes:
    """The whole request body (at most MAX_BODY bytes)."""
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
    return b"".join(chunks)


def _decoded(decode: Callable[[bytes], Any], body: bytes, what: str) -> Any:
    """BODY decoded and type-checked, or a 400 that says which field is wrong and why."""
    try:
        return decode(body)
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
        raise _BadRequest(400, "bad_request", f"invalid {what}: {exc}") from exc


def _header(scope: Scope, name: bytes) -> str | None:
    return next((v.decode("latin-1") for n, v in scope["headers"] if n == name), None)


async def _send(send: Send, status: int, body: bytes) -> None:
    headers = [_JSON, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
