"""Loyalty over HTTP: balance and tier, earn, burn, adjust, ledger, program, rewards and their claims, expiry."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import msgspec
from litestar import Controller, Request, Response, get, post, put
from litestar.params import FromPath, FromQuery, JSONBody

from accord.api.collect import error_body
from accord.loyalty import history
from accord.loyalty.service import EarnRequest, LoyaltyError
from accord.platform import Platform


class LineIn(msgspec.Struct):
    """One purchase line: amount in minor units and its category (for category multipliers)."""

    amount_minor: int
    category: str | None = None


class EarnIn(msgspec.Struct):
    """Points to earn: `points` directly, or a purchase (`amount_minor` or `lines`, with `currency`)."""

    idempotency_key: str
    channel: str
    points: int | None = None
    amount_minor: int | None = None
    currency: str | None = None
    lines: list[LineIn] | None = None
    order_id: str | None = None
    store_id: str | None = None
    reason: str | None = None


class BurnIn(msgspec.Struct):
    """Points to spend."""

    idempotency_key: str
    points: int
    channel: str
    store_id: str | None = None
    reason: str | None = None


class AdjustIn(msgspec.Struct):
    """A manual correction (positive or negative), with its reason."""

    idempotency_key: str
    points: int
    reason: str


class RewardIn(msgspec.Struct):
    """A catalogue reward; stock None = unlimited."""

    name: str
    cost_points: int
    stock: int | None = None


class ClaimIn(msgspec.Struct):
    """Spend points on a reward."""

    idempotency_key: str
    channel: str
    store_id: str | None = None


class UseIn(msgspec.Struct):
    """Hand a claimed reward over."""

    channel: str
    store_id: str | None = None


class ExpireIn(msgspec.Struct):
    """Expire lots due at AT (default now)."""

    at: datetime | None = None


class BackfillIn(msgspec.Struct):
    """Purchases to earn points for, dated at each purchase: order events from SINCE (default: the oldest) to
    before UNTIL (default: now), each a date (YYYY-MM-DD, UTC) or an ISO 8601 time. DRY_RUN: only count them."""

    since: str | None = None
    until: str | None = None
    dry_run: bool = False


def _platform(request: Request[Any, Any, Any]) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


def _error(exc: LoyaltyError) -> Response[bytes]:
    return _answer(*_error_body(exc))


def _json(data: Any, status: int = 200) -> Response[bytes]:
    return Response(msgspec.json.encode(data), status_code=status, media_type="application/json")


def _answer(status: int, body: bytes) -> Response[bytes]:
    return Response(body, status_code=status, media_type="application/json")


def _error_body(exc: LoyaltyError) -> tuple[int, bytes]:
    return exc.status, error_body(exc.code, exc.message, **({"detail": exc.detail} if exc.detail else {}))


def _written(entry: dict[str, Any]) -> tuple[int, bytes]:
    return (200 if entry.get("replayed") else 201), msgspec.json.encode(entry)


async def earn_points(platform: Platform, profile_id: str, data: EarnIn) -> tuple[int, bytes]:
    """POST /api/v1/loyalty/{profile_id}/earn (the Litestar route and the lean front both answer with this)."""
    earn = EarnRequest(
        idempotency_key=data.idempotency_key,
        channel=data.channel,
        points=data.points,
        amount_minor=data.amount_minor,
        currency=data.currency,
        lines=[(line.amount_minor, line.category) for line in data.lines] if data.lines else None,
        order_id=data.order_id,
        store_id=data.store_id,
        reason=data.reason,
    )
    try:
        op = platform.loyalty.earn_op(profile_id, earn)
        return _written(await asyncio.wrap_future(platform.committer.submit(op)))
    except LoyaltyError as exc:
        return _error_body(exc)


async def burn_points(platform: Platform, profile_id: str, data: BurnIn) -> tuple[int, bytes]:
    """POST /api/v1/loyalty/{profile_id}/burn: 201 spent, 200 replayed, 409 insufficient_points."""
    try:
        op = platform.loyalty.burn_op(
            profile_id, data.points, data.idempotency_key, data.channel, data.store_id, data.reason
        )
        return _written(await asyncio.wrap_future(platform.committer.submit(op)))
    except LoyaltyError as exc:
        return _error_body(exc)


class LoyaltyController(Controller):
    """Everything under /api/v1/loyalty (bearer token)."""

    path = "/api/v1/loyalty"
    tags = ["loyalty"]

    @get("/program", summary="The program: earn rules, tiers, expiry")
    async def program(self, request: Request[Any, Any, Any]) -> Response[bytes]:
        return _json((await asyncio.to_thread(_platform(request).loyalty.program)).as_config())

    @put("/program", summary="Replace the program", status_code=200)
    async def configure(self, request: Request[Any, Any, Any], data: JSONBody[dict[str, Any]]) -> Response[bytes]:
        try:
            program = await asyncio.to_thread(_platform(request).loyalty.configure, data)
        except LoyaltyError as exc:
            return _error(exc)
        return _json(program.as_config())

    @get("/rewards", summary="The rewards catalogue")
    async def rewards(self, request: Request[Any, Any, Any]) -> Response[bytes]:
        return _json(await asyncio.to_thread(_platform(request).loyalty.rewards))

    @post("/rewards", summary="Add a reward to the catalogue", status_code=201)
    async def add_reward(self, request: Request[Any, Any, Any], data: JSONBody[RewardIn]) -> Response[bytes]:
        try:
            reward = await asyncio.to_thread(
                _platform(request).loyalty.add_reward, data.name, data.cost_points, data.stock
            )
        except LoyaltyError as exc:
            return _error(exc)
        return _json(reward, 201)

    @post("/claims/{claim_id:str}/use", summary="Hand over a claimed reward (once)", status_code=200)
    async def use_claim(
        self, request: Request[Any, Any, Any], claim_id: FromPath[str], data: JSONBody[UseIn]
    ) -> Response[bytes]:
        try:
            used = await asyncio.to_thread(_platform(request).loyalty.use_claim, claim_id, data.channel, data.store_id)
        except LoyaltyError as exc:
            return _error(exc)
        return _json(used)

    @post("/expire", summary="Expire points whose lots are due", status_code=200)
    async def expire(self, request: Request[Any, Any, Any], data: JSONBody[ExpireIn]) -> Response[bytes]:
        return _json({"expired_lots": await asyncio.to_thread(_platform(request).loyalty.expire, data.at)})

    @post(
        "/backfill",
        summary="Earn points for past purchases as if the program had run then (dated at each purchase; idempotent)",
        description=(
            "Reads the Order Completed / Placed events (and the returns, refunds and cancellations) of the event "
            "store from `since` to before `until`, in time order, and earns and reverses their points by the "
            "program's rules, each entry and timeline event dated at its purchase; lots expire by the program's "
            "expiry counting from their purchase (what came due by `until`, at most now, is expired, dated at its "
            "expiry); tiers follow. The keys are the live path's, so a second run, or the same orders arriving "
            "live, earn nothing more. `dry_run` answers the order events per month (UTC) instead, and `until` "
            "resolved, so a client can run it month by month. 400 `invalid_date` / `invalid_range`, 409 "
            "`no_program` (configure one first) or `backfill_running`."
        ),
        status_code=200,
    )
    async def backfill(self, request: Request[Any, Any, Any], data: JSONBody[BackfillIn]) -> Response[bytes]:
        platform = _platform(request)
        try:
            since = history.parse_time(data.since, "since")
            until = history.parse_time(data.until, "until")
            run = history.plan if data.dry_run else history.backfill
            result = await asyncio.to_thread(run, platform.loyalty, platform.events, since, until)
        except LoyaltyError as exc:
            return _error(exc)
        return _json(result)

    @get("/{profile_id:str}", summary="Balance, tier, next tier, next expiry, latest entries")
    async def account(self, request: Request[Any, Any, Any], profile_id: FromPath[str]) -> Response[bytes]:
        try:
            return _json(await asyncio.to_thread(_platform(request).loyalty.account, profile_id))
        except LoyaltyError as exc:
            return _error(exc)

    @get("/{profile_id:str}/ledger", summary="Ledger entries, newest first")
    async def ledger(
        self,
        request: Request[Any, Any, Any],
        profile_id: FromPath[str],
        limit: FromQuery[int] = 100,
        before: FromQuery[str | None] = None,
    ) -> Response[bytes]:
        if not 1 <= limit <= 1000:
            body = error_body("invalid_limit", "limit must be between 1 and 1000")
            return Response(body, status_code=400, media_type="application/json")
        return _json(await asyncio.to_thread(_platform(request).loyalty.ledger, profile_id, limit, before))

    @post(
        "/{profile_id:str}/earn",
        summary="Earn points (directly or for a purchase); same idempotency key -> same entry",
        status_code=201,
    )
    async def earn(
        self, request: Request[Any, Any, Any], profile_id: FromPath[str], data: JSONBody[EarnIn]
    ) -> Response[bytes]:
        return _answer(*await earn_points(_platform(request), profile_id, data))

    @post(
        "/{profile_id:str}/burn",
        summary="Spend points; 409 insufficient_points when the balance is lower",
        status_code=201,
    )
    async def burn(
        self, request: Request[Any, Any, Any], profile_id: FromPath[str], data: JSONBody[BurnIn]
    ) -> Response[bytes]:
        return _answer(*await burn_points(_platform(request), profile_id, data))

    @post("/{profile_id:str}/adjust", summary="A manual correction with a reason", status_code=201)
    async def adjust(
        self, request: Request[Any, Any, Any], profile_id: FromPath[str], data: JSONBody[AdjustIn]
    ) -> Response[bytes]:
        loyalty = _platform(request).loyalty
        try:
            entry = await asyncio.to_thread(loyalty.adjust, profile_id, data.points, data.idempotency_key, data.reason)
        except LoyaltyError as exc:
            return _error(exc)
        return _json(entry, 200 if entry.get("replayed") else 201)

    @post("/{profile_id:str}/rewards/{reward_id:str}/claim", summary="Spend points on a reward", status_code=201)
    async def claim(
        self,
        request: Request[Any, Any, Any],
        profile_id: FromPath[str],
        reward_id: FromPath[str],
        data: JSONBody[ClaimIn],
    ) -> Response[bytes]:
        loyalty = _platform(request).loyalty
        try:
            claim = await asyncio.to_thread(
                loyalty.claim_reward, profile_id, reward_id, data.idempotency_key, data.channel, data.store_id
            )
        except LoyaltyError as exc:
            return _error(exc)
        return _json(claim, 200 if claim.get("replayed") else 201)
