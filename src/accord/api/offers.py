"""Offers and coupons over HTTP: manage offers and codes, assign them, validate and redeem from any channel."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath, FromQuery, JSONBody

from accord.api.collect import error_body
from accord.offers import service as offers
from accord.platform import Platform


class OfferIn(msgspec.Struct):
    """A new offer. discount_value: basis points for percent (1000 = 10%), minor units for amount."""

    name: str
    code_policy: str = "shared"
    code: str | None = None
    discount_kind: str = "percent"
    discount_value: int = 1000
    currency: str | None = None
    description: str = ""
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    channels: list[str] | None = None
    stores: list[str] | None = None
    segments: list[str] | None = None
    min_basket_minor: int | None = None
    per_customer_limit: int | None = None


class CodesIn(msgspec.Struct):
    """How many single-use codes to generate."""

    count: int
    length: int = 10


class StatusIn(msgspec.Struct):
    """active, paused or ended."""

    status: str


class AssignIn(msgspec.Struct):
    """Give an offer to a profile; message_id: the message/delivery that delivered it."""

    profile_id: str
    code: str | None = None
    message_id: str | None = None
    delivery_channel: str | None = None
    note: str | None = None


class CouponIn(msgspec.Struct):
    """A code presented in a channel (store, web, app, call_center, ...), with the basket when there is one."""

    code: str
    channel: str
    store_id: str | None = None
    profile_id: str | None = None
    basket_minor: int | None = None
    currency: str | None = None
    order_id: str | None = None
    idempotency_key: str | None = None

    def request(self) -> offers.CouponRequest:
        """The domain request."""
        return offers.CouponRequest(
            code=self.code,
            channel=self.channel,
            store_id=self.store_id,
            profile_id=self.profile_id,
            basket_minor=self.basket_minor,
            currency=self.currency,
            order_id=self.order_id,
        )


def _platform(request: Request[Any, Any, Any]) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


def _error(exc: offers.OfferError) -> Response[bytes]:
    return _answer(*_error_body(exc))


def _json(data: Any, status: int = 200) -> Response[bytes]:
    return Response(msgspec.json.encode(data), status_code=status, media_type="application/json")


def _answer(status: int, body: bytes) -> Response[bytes]:
    return Response(body, status_code=status, media_type="application/json")


def _error_body(exc: offers.OfferError) -> tuple[int, bytes]:
    extra: dict[str, Any] = {}
    if exc.detail:
        extra["problems"] = exc.detail.get("problems", [])
    return exc.status, error_body(exc.code, exc.message, **extra)


async def validate_coupon(platform: Platform, data: CouponIn) -> tuple[int, bytes]:
    """POST /api/v1/coupons/validate (the Litestar route and the lean front both answer with this)."""
    try:
        if platform.state.dialect.name == "sqlite":  # a few local indexed reads: cheaper than a thread hop
            verdict = platform.offers.validate(data.request())
        else:
            verdict = await asyncio.to_thread(platform.offers.validate, data.request())
    except offers.OfferError as exc:
        return _error_body(exc)
    return 200, msgspec.json.encode(verdict.as_dict())


async def redeem_coupon(platform: Platform, data: CouponIn, header_key: str | None) -> tuple[int, bytes]:
    """POST /api/v1/coupons/redeem: 201 redeemed, 200 replayed, 4xx with the error shape."""
    key = data.idempotency_key or header_key or ""
    try:
        op = platform.offers.redeem_op(data.request(), key)
        result = await asyncio.wrap_future(platform.committer.submit(op))
    except offers.OfferError as exc:
        return _error_body(exc)
    return (200 if result.get("replayed") else 201), msgspec.json.encode(result)


class OffersController(Controller):
    """Offers, codes, assignment; coupon validation and redemption (bearer token)."""

    path = "/api/v1"
    tags = ["offers"]

    @post("/offers", summary="Create an offer (a shared code is generated unless given)", status_code=201)
    async def create(self, request: Request[Any, Any, Any], data: JSONBody[OfferIn]) -> Response[bytes]:
        spec = offers.OfferSpec(**msgspec.structs.asdict(data))
        try:
            return _json(await asyncio.to_thread(offers.create_offer, _platform(request).state, spec), 201)
        except offers.OfferError as exc:
            return _error(exc)

    @get("/offers", summary="List offers, newest first")
    async def list_all(self, request: Request[Any, Any, Any], status: FromQuery[str | None] = None) -> Response[bytes]:
        return _json(await asyncio.to_thread(offers.list_offers, _platform(request).state, status))

    @get("/offers/{offer_id:str}", summary="One offer with its code and redemption counts")
    async def one(self, request: Request[Any, Any, Any], offer_id: FromPath[str]) -> Response[bytes]:
        try:
            return _json(await asyncio.to_thread(offers.get_offer, _platform(request).state, offer_id))
        except offers.OfferError as exc:
            return _error(exc)

    @post("/offers/{offer_id:str}/status", summary="Pause, resume or end an offer", status_code=200)
    async def status(
        self, request: Request[Any, Any, Any], offer_id: FromPath[str], data: JSONBody[StatusIn]
    ) -> Response[bytes]:
        try:
            return _json(await asyncio.to_thread(offers.set_status, _platform(request).state, offer_id, data.status))
        except offers.OfferError as exc:
            return _error(exc)

    @post("/offers/{offer_id:str}/codes", summary="Generate unique single-use codes in bulk", status_code=201)
    async def codes(
        self, request: Request[Any, Any, Any], offer_id: FromPath[str], data: JSONBody[CodesIn]
    ) -> Response[bytes]:
        state = _platform(request).state
        try:
            codes = await asyncio.to_thread(offers.generate_codes, state, offer_id, data.count, data.length)
        except offers.OfferError as exc:
            return _error(exc)
        return _json({"offer_id": offer_id, "count": len(codes), "codes": codes}, 201)

    @post("/offers/{offer_id:str}/assign", summary="Give an offer (a code) to a customer", status_code=200)
    async def assign(
        self, request: Request[Any, Any, Any], offer_id: FromPath[str], data: JSONBody[AssignIn]
    ) -> Response[bytes]:
        platform = _platform(request)
        try:
            result = await asyncio.to_thread(
                offers.assign,
                platform.state,
                platform.journal,
                offer_id,
                data.profile_id,
                data.code,
                data.message_id,
                data.delivery_channel,
                data.note,
            )
        except offers.OfferError as exc:
            return _error(exc)
        return _json(result)

    @post("/coupons/validate", summary="Can this code be used here and now? Says why or why not", status_code=200)
    async def validate(self, request: Request[Any, Any, Any], data: JSONBody[CouponIn]) -> Response[bytes]:
        return _answer(*await validate_coupon(_platform(request), data))

    @post(
        "/coupons/redeem",
        summary="Use a code once (idempotency key in the body or the Idempotency-Key header)",
        description="201 redeemed; 200 the same key again (same redemption); 409 used or limit reached; "
        "422 not valid here and now (with the problems); 404 unknown code.",
        status_code=201,
    )
    async def redeem(self, request: Request[Any, Any, Any], data: JSONBody[CouponIn]) -> Response[bytes]:
        return _answer(*await redeem_coupon(_platform(request), data, request.headers.get("idempotency-key")))

    @get("/coupons/active", summary="Offers a customer holds and can use at this store and channel now, and why")
    async def active(
        self,
        request: Request[Any, Any, Any],
        profile_id: FromQuery[str],
        channel: FromQuery[str] = "store",
        store_id: FromQuery[str | None] = None,
    ) -> Response[bytes]:
        try:
            found = await asyncio.to_thread(_platform(request).offers.active_offers, profile_id, store_id, channel)
        except offers.OfferError as exc:
            return _error(exc)
        return _json({"profile_id": profile_id, "store_id": store_id, "channel": channel, "offers": found})
