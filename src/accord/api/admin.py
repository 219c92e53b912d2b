"""The admin API (bearer token): sources, profiles, timeline, merges, unmerge, stats, health."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.exceptions import HTTPException, NotFoundException
from litestar.params import FromPath, FromQuery, JSONBody

from accord.collect.channels import CHANNELS
from accord.collect.errors import CollectError
from accord.collect.sources import add_source, list_sources
from accord.identity.graph import IdentityRuleError
from accord.platform import Platform
from accord.profiles import service as profiles
from accord.segments import service as segments
from accord.segments.engines import DuckDBEngine


class ApiError(HTTPException):
    """A user-caused error with a stable code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(status_code=status, detail=message, extra={"code": code})


class SourceIn(msgspec.Struct):
    """A new source."""

    name: str
    channel: str = "auto"


class UnmergeIn(msgspec.Struct):
    """Which identifier ('type:value') to detach into a new profile."""

    identifier: str
    reason: str = "manual unmerge"


def _platform(request: Request[Any, Any, Any]) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


class AdminController(Controller):
    """Everything under /api/v1 (bearer token required except for health)."""

    path = "/api/v1"
    tags = ["admin"]

    @get("/health", summary="Liveness and processing lag")
    async def health(self, request: Request[Any, Any, Any]) -> dict[str, Any]:
        platform = _platform(request)
        return {"status": "ok", "processing_lag": await asyncio.to_thread(platform.processor.lag)}

    @get("/stats", summary="Counts of events, profiles and rejected messages")
    async def stats(self, request: Request[Any, Any, Any]) -> dict[str, Any]:
        return await asyncio.to_thread(_platform(request).stats)

    @get("/sources", summary="List sources and their write keys")
    async def sources(self, request: Request[Any, Any, Any]) -> list[dict[str, Any]]:
        return [dataclasses.asdict(s) for s in await asyncio.to_thread(list_sources, _platform(request).state)]

    @post("/sources", summary="Create a source (returns its write key)", status_code=201)
    async def add_source(self, request: Request[Any, Any, Any], data: JSONBody[SourceIn]) -> dict[str, Any]:
        try:
            source = await asyncio.to_thread(add_source, _platform(request).state, data.name, data.channel)
        except CollectError as exc:
            raise ApiError(exc.status, exc.code, exc.message) from exc
        return dataclasses.asdict(source)

    @get("/channels", summary="The channel taxonomy")
    async def channels(self) -> list[str]:
        return list(CHANNELS)

    @get("/profiles/resolve", summary="Find the profile holding an identifier (TYPE:VALUE)")
    async def resolve(self, request: Request[Any, Any, Any], identifier: FromQuery[str]) -> dict[str, Any]:
        platform = _platform(request)
        try:
            pid = await asyncio.to_thread(profiles.resolve, platform.state, platform.rules, identifier)
        except profiles.InvalidIdentifier as exc:
            raise ApiError(400, "invalid_identifier", str(exc)) from exc
        if pid is None:
            raise NotFoundException(detail=f"no profile has identifier {identifier!r}")
        return {"profile_id": pid, "identifier": identifier}

    @get("/profiles/{profile_id:str}", summary="One profile: identifiers, traits, channels, first/last seen")
    async def profile(self, request: Request[Any, Any, Any], profile_id: FromPath[str]) -> dict[str, Any]:
        platform = _platform(request)
        view = await asyncio.to_thread(profiles.profile_view, platform.state, platform.events, profile_id)
        if view is None:
            raise NotFoundException(detail=f"no profile {profile_id}")
        engine = DuckDBEngine(platform.events)
        view.update(await asyncio.to_thread(segments.profile_additions, platform.state, engine, view["id"]))
        return view

    @get("/profiles/{profile_id:str}/events", summary="The profile's timeline across channels, in time order")
    async def events(
        self,
        request: Request[Any, Any, Any],
        profile_id: FromPath[str],
        limit: FromQuery[int] = 50,
        cursor: FromQuery[str | None] = None,
        channel: FromQuery[str | None] = None,
        order: FromQuery[str] = "asc",
    ) -> dict[str, Any]:
        platform = _platform(request)
        if not 1 <= limit <= 1000:
            raise ApiError(400, "invalid_limit", "limit must be between 1 and 1000")
        if order not in ("asc", "desc"):
            raise ApiError(400, "invalid_order", "order must be asc or desc")
        try:
            page = await asyncio.to_thread(
                profiles.timeline, platform.state, platform.events, profile_id, limit, cursor, channel, order == "desc"
            )
        except ValueError as exc:
            raise ApiError(400, "invalid_cursor", str(exc)) from exc
        if page is None:
            raise NotFoundException(detail=f"no profile {profile_id}")
        return page

    @get("/profiles/{profile_id:str}/merges", summary="Merges, regroupings and unmerges of the profile")
    async def merges(self, request: Request[Any, Any, Any], profile_id: FromPath[str]) -> dict[str, Any]:
        platform = _platform(request)
        result = await asyncio.to_thread(profiles.merge_history, platform.state, profile_id)
        if result is None:
            raise NotFoundException(detail=f"no profile {profile_id}")
        return result

    @post(
        "/profiles/{profile_id:str}/unmerge",
        summary="Detach an identifier and its events into a new profile",
        status_code=200,
    )
    async def unmerge(
        self, request: Request[Any, Any, Any], profile_id: FromPath[str], data: JSONBody[UnmergeIn]
    ) -> dict[str, Any]:
        platform = _platform(request)
        try:
            result = await asyncio.to_thread(profiles.unmerge, platform.graph, profile_id, data.identifier, data.reason)
            await asyncio.to_thread(platform.processor.sync_identity)
        except profiles.InvalidIdentifier as exc:
            raise ApiError(400, "invalid_identifier", str(exc)) from exc
        except IdentityRuleError as exc:
            raise ApiError(409, "unmerge_refused", str(exc)) from exc
        return result

    @get("/identity/conflicts", summary="Identity conflicts recorded for review")
    async def conflicts(self, request: Request[Any, Any, Any], status: FromQuery[str] = "open") -> list[dict[str, Any]]:
        return await asyncio.to_thread(profiles.conflicts, _platform(request).state, status or None)
