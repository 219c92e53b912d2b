"""Admin API for segments, computed traits and audiences (bearer token)."""

from __future__ import annotations

import asyncio
import csv
import io
from typing import Any

from litestar import Controller, Request, Response, delete, get, post
from litestar.exceptions import HTTPException
from litestar.params import FromPath, FromQuery, JSONBody

from accord.identity import queries as identity_queries
from accord.platform import Platform
from accord.segments import service
from accord.segments.engines import DuckDBEngine
from accord.segments.rules import RuleError, parse_segment, parse_trait


class SegmentApiError(HTTPException):
    """A user-caused error with a stable code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(status_code=status, detail=message, extra={"code": code})


def _platform(request: Request[Any, Any, Any]) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


def _rule_error(exc: RuleError) -> SegmentApiError:
    return SegmentApiError(422, "invalid_rule", str(exc))


def _not_found(exc: service.SegmentNotFound) -> SegmentApiError:
    return SegmentApiError(404, "segment_not_found", str(exc))


def _segment(state: Any, name: str) -> dict[str, Any]:
    for item in service.list_segments(state):
        if item["name"] == name:
            return item
    raise SegmentApiError(404, "segment_not_found", f"there is no segment named {name!r}")


class SegmentController(Controller):
    """/api/v1/segments and /api/v1/traits."""

    path = "/api/v1"
    tags = ["segments"]

    @get("/segments", summary="Saved segments with their current size")
    async def list_segments(self, request: Request[Any, Any, Any]) -> list[dict[str, Any]]:
        return await asyncio.to_thread(service.list_segments, _platform(request).state)

    @post(
        "/segments", summary="Create or replace a segment (the rule language as JSON) and evaluate it", status_code=200
    )
    async def apply(self, request: Request[Any, Any, Any], data: JSONBody[dict[str, Any]]) -> dict[str, Any]:
        platform = _platform(request)

        def run() -> dict[str, Any]:
            definition = parse_segment(data)
            with platform.segments.lock:
                return service.apply_segment(
                    platform.state, DuckDBEngine(platform.events), platform.journal, definition, None
                )

        try:
            return await asyncio.to_thread(run)
        except RuleError as exc:
            raise _rule_error(exc) from exc

    @post("/segments/preview", summary="Size and a sample of a segment, without saving it", status_code=200)
    async def preview(
        self, request: Request[Any, Any, Any], data: JSONBody[dict[str, Any]], sample: FromQuery[int] = 10
    ) -> dict[str, Any]:
        platform = _platform(request)
        try:
            definition = parse_segment(data)
            return await asyncio.to_thread(
                service.preview, platform.state, DuckDBEngine(platform.events), definition, None, sample
            )
        except RuleError as exc:
            raise _rule_error(exc) from exc

    @get("/segments/changes", summary="Membership changes after a sequence number (the journeys' feed)")
    async def changes(
        self, request: Request[Any, Any, Any], after: FromQuery[int] = 0, limit: FromQuery[int] = 1000
    ) -> dict[str, Any]:
        if not 1 <= limit <= 10_000:
            raise SegmentApiError(400, "invalid_limit", "limit must be between 1 and 10000")
        rows = await asyncio.to_thread(service.membership_changes_since, _platform(request).state, after, limit)
        return {"changes": [r.__dict__ for r in rows], "next_after": rows[-1].seq if rows else after}

    @get("/segments/{name:str}", summary="One segment: definition and size")
    async def one(self, request: Request[Any, Any, Any], name: FromPath[str]) -> dict[str, Any]:
        return await asyncio.to_thread(_segment, _platform(request).state, name)

    @delete("/segments/{name:str}", summary="Delete a segment (its members exit)", status_code=200)
    async def remove(self, request: Request[Any, Any, Any], name: FromPath[str]) -> dict[str, Any]:
        try:
            await asyncio.to_thread(service.delete_segment, _platform(request).state, name)
        except service.SegmentNotFound as exc:
            raise _not_found(exc) from exc
        except service.SegmentInUse as exc:
            raise SegmentApiError(409, "segment_in_use", str(exc)) from exc
        return {"deleted": name}

    @get("/segments/{name:str}/members", summary="Current members (format=json or csv)")
    async def members(
        self,
        request: Request[Any, Any, Any],
        name: FromPath[str],
        format: FromQuery[str] = "json",
        limit: FromQuery[int | None] = None,
    ) -> Response[Any]:
        state = _platform(request).state
        await asyncio.to_thread(_segment, state, name)
        rows = await asyncio.to_thread(service.members, state, name, limit)
        if format == "csv":
            out = io.StringIO()
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(["profile_id", "entered_at"])
            writer.writerows([[r["profile_id"], r["entered_at"].isoformat()] for r in rows])
            return Response(out.getvalue(), media_type="text/csv")
        if format != "json":
            raise SegmentApiError(400, "invalid_format", "format must be json or csv")
        return Response({"segment": name, "members": rows})

    @get("/segments/{name:str}/sizes", summary="Size of the segment over time")
    async def sizes(self, request: Request[Any, Any, Any], name: FromPath[str]) -> dict[str, Any]:
        await asyncio.to_thread(_segment, _platform(request).state, name)
        return {"segment": name, "sizes": await asyncio.to_thread(service.size_history, _platform(request).state, name)}

    @get("/segments/{name:str}/export", summary="Audience export: normalised SHA-256 emails and E.164 phones (CSV)")
    async def export(
        self, request: Request[Any, Any, Any], name: FromPath[str], format: FromQuery[str] = "hashed-csv"
    ) -> Response[str]:
        if format != "hashed-csv":
            raise SegmentApiError(400, "invalid_format", "format must be hashed-csv")
        state = _platform(request).state
        try:
            text, _rows = await asyncio.to_thread(
                service.hashed_audience_csv, state, name, lambda pid: identity_queries.identifiers_of(state, pid)
            )
        except service.SegmentNotFound as exc:
            raise _not_found(exc) from exc
        return Response(text, media_type="text/csv")

    @get("/traits", summary="Built-in and declared computed traits")
    async def traits(self, request: Request[Any, Any, Any]) -> list[dict[str, Any]]:
        return await asyncio.to_thread(service.list_traits, _platform(request).state)

    @post("/traits", summary="Declare (or replace) a computed trait", status_code=200)
    async def apply_trait(self, request: Request[Any, Any, Any], data: JSONBody[dict[str, Any]]) -> dict[str, Any]:
        try:
            definition = parse_trait(data)
            return await asyncio.to_thread(service.apply_trait, _platform(request).state, definition)
        except RuleError as exc:
            raise _rule_error(exc) from exc
