"""The identity matching API: run probabilistic matching, work the review queue, undo a merge."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Literal

import msgspec
from litestar import Controller, Request, get, post
from litestar.params import FromPath, FromQuery, JSONBody

from accord.api.admin import ApiError
from accord.identity import matching
from accord.identity.graph import IdentityRuleError
from accord.platform import Platform

_running = threading.Lock()  # one match run at a time per server


class MatchIn(msgspec.Struct):
    """Thresholds on the match probability; full retrains the model and rescores every pair."""

    merge_above: float = matching.MatchOptions.merge_above
    review_above: float = matching.MatchOptions.review_above
    full: bool = False


class DecisionIn(msgspec.Struct):
    """A reviewer's decision on a pair."""

    decision: Literal["accept", "reject"]
    note: str | None = None


class UndoIn(msgspec.Struct):
    """Why a merge is undone (kept in the audit)."""

    reason: str = "merge undone"


def _platform(request: Request[Any, Any, Any]) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


def match_now(platform: Platform, options: matching.MatchOptions) -> dict[str, Any]:
    """Run matching in this process and bring the event store's profile ids in step."""
    if not _running.acquire(blocking=False):
        raise ApiError(409, "match_running", "a match run is in progress; try again when it has finished")
    try:
        report = matching.run_match(platform.graph, platform.events, options)
        platform.processor.sync_identity()
    finally:
        _running.release()
    return report.as_dict()


class IdentityController(Controller):
    """/api/v1/identity: probabilistic matching and its review queue."""

    path = "/api/v1/identity"
    tags = ["identity"]

    @post(
        "/match",
        summary="Match profiles that share no identifier (Splink); merge sure pairs, queue the rest",
        status_code=200,
    )
    async def match(self, request: Request[Any, Any, Any], data: JSONBody[MatchIn]) -> dict[str, Any]:
        options = matching.MatchOptions(data.merge_above, data.review_above, data.full)
        try:
            options.check()
            return await asyncio.to_thread(match_now, _platform(request), options)
        except matching.MatchError as exc:
            raise ApiError(422, "match_failed", str(exc)) from exc

    @get("/reviews", summary="Pairs of profiles waiting for a person to decide (most likely first)")
    async def reviews(
        self, request: Request[Any, Any, Any], status: FromQuery[str] = "open", limit: FromQuery[int] = 100
    ) -> list[dict[str, Any]]:
        if status not in {"open", "accepted", "rejected", "all", ""}:
            raise ApiError(400, "invalid_status", f"status must be open, accepted, rejected or all, got {status!r}")
        if not 1 <= limit <= 10_000:
            raise ApiError(400, "invalid_limit", "limit must be between 1 and 10000")
        state = _platform(request).state
        return await asyncio.to_thread(matching.reviews, state, None if status in {"all", ""} else status, limit)

    @post("/reviews/{review_id:str}", summary="Accept (merge) or reject (keep apart) a pair", status_code=200)
    async def decide(
        self, request: Request[Any, Any, Any], review_id: FromPath[str], data: JSONBody[DecisionIn]
    ) -> dict[str, Any]:
        platform = _platform(request)
        try:
            result = await asyncio.to_thread(
                matching.decide_review, platform.graph, review_id, data.decision == "accept", data.note
            )
        except matching.ReviewNotFound as exc:
            raise ApiError(404, "review_not_found", str(exc)) from exc
        except matching.ReviewClosed as exc:
            raise ApiError(409, "review_closed", str(exc)) from exc
        await asyncio.to_thread(platform.processor.sync_identity)
        return result

    @post(
        "/merges/{merge_id:str}/undo",
        summary="Undo a merge: its identifiers go back to a profile of their own",
        status_code=200,
    )
    async def undo(
        self, request: Request[Any, Any, Any], merge_id: FromPath[str], data: JSONBody[UndoIn]
    ) -> dict[str, Any]:
        platform = _platform(request)
        try:
            new_pid = await asyncio.to_thread(platform.graph.undo_merge, merge_id, data.reason)
        except IdentityRuleError as exc:
            code, status = ("merge_not_found", 404) if "no merge" in str(exc) else ("undo_refused", 409)
            raise ApiError(status, code, str(exc)) from exc
        await asyncio.to_thread(platform.processor.sync_identity)
        return {"merge_id": merge_id, "new_profile_id": new_pid}
