"""HTTP API of journeys: apply versions, start/pause/stop, trigger, stats, simulate, tasks."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.params import FromPath, FromQuery, JSONBody

from accord.api.admin import ApiError
from accord.journeys import service as journeys
from accord.journeys.errors import JourneyError
from accord.platform import Platform
from accord.profiles import service as profiles
from accord.profiles.service import InvalidIdentifier


class TriggerIn(msgspec.Struct):
    """Who enters (profile ids and/or TYPE:VALUE identifiers) and the entry properties."""

    profile_ids: list[str] = []
    identifiers: list[str] = []
    properties: dict[str, Any] = {}


class SimulateIn(msgspec.Struct):
    """The profile to dry-run the journey for (TYPE:VALUE), and optionally an unsaved definition (YAML/JSON)."""

    identifier: str
    definition: str | None = None


def _platform(request: Request[Any, Any, Any]) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


async def _call(fn: Any, *args: Any) -> Any:
    try:
        return await asyncio.to_thread(fn, *args)
    except JourneyError as exc:
        raise ApiError(exc.status, exc.code, exc.message) from exc
    except InvalidIdentifier as exc:
        raise ApiError(422, "invalid_identifier", str(exc)) from exc


class JourneysController(Controller):
    """/api/v1/journeys (bearer token)."""

    path = "/api/v1/journeys"
    tags = ["journeys"]

    @get("/", summary="Every journey with its latest version, status and instance counts")
    async def list_all(self, request: Request[Any, Any, Any]) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await _call(journeys.list_journeys, _platform(request).state)
        return result

    @post("/", summary="Apply a definition (JSON body, or YAML as text/yaml); a change makes a new version")
    async def apply(self, request: Request[Any, Any, Any], activate: FromQuery[bool] = False) -> dict[str, Any]:
        raw = await request.body()
        content_type = request.headers.get("content-type", "")
        if "json" in content_type:
            try:
                data: Any = msgspec.json.decode(raw)
            except msgspec.DecodeError as exc:
                raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from exc
        else:
            data = raw.decode("utf-8", errors="replace")
        result: dict[str, Any] = await _call(journeys.apply, _platform(request).state, data, activate)
        return result

    @get("/{name:str}", summary="One journey and its latest definition")
    async def get_one(self, request: Request[Any, Any, Any], name: FromPath[str]) -> dict[str, Any]:
        result: dict[str, Any] = await _call(journeys.get, _platform(request).state, name)
        return result

    @post("/{name:str}/{action:str}", summary="start, pause or stop a journey", status_code=200)
    async def set_status(
        self, request: Request[Any, Any, Any], name: FromPath[str], action: FromPath[str]
    ) -> dict[str, Any]:
        status = {"start": "active", "resume": "active", "pause": "paused", "stop": "stopped"}.get(action)
        if status is None:
            raise ApiError(404, "unknown_action", f"unknown action {action!r}; use start, pause, resume or stop")
        result: dict[str, Any] = await _call(journeys.set_status, _platform(request).state, name, status)
        return result

    @get("/{name:str}/stats", summary="Entries, exits by reason, per-step counts, conversion vs holdout")
    async def stats(self, request: Request[Any, Any, Any], name: FromPath[str]) -> dict[str, Any]:
        result: dict[str, Any] = await _call(journeys.stats, _platform(request).state, name)
        return result

    @post("/{name:str}/trigger", summary="Enter profiles through the API (entry rules apply)", status_code=200)
    async def trigger(
        self, request: Request[Any, Any, Any], name: FromPath[str], data: JSONBody[TriggerIn]
    ) -> dict[str, Any]:
        platform = _platform(request)

        def run() -> dict[str, Any]:
            pids = list(data.profile_ids)
            unknown = []
            for identifier in data.identifiers:
                pid = profiles.resolve(platform.state, platform.rules, identifier)
                if pid is None:
                    unknown.append(identifier)
                else:
                    pids.append(pid)
            entered = journeys.trigger(platform.journeys, name, pids, data.properties)
            return {"entered": len(entered), "instance_ids": entered, "unknown_identifiers": unknown}

        result: dict[str, Any] = await _call(run)
        return result

    @post("/{name:str}/simulate", summary="Dry run for one profile: each decision and why", status_code=200)
    async def simulate(
        self, request: Request[Any, Any, Any], name: FromPath[str], data: JSONBody[SimulateIn]
    ) -> dict[str, Any]:
        platform = _platform(request)

        def run() -> dict[str, Any]:
            pid = profiles.resolve(platform.state, platform.rules, data.identifier)
            if pid is None:
                raise JourneyError(f"no profile holds {data.identifier}", code="profile_not_found", status=404)
            traits = platform.journeys.traits([pid]).get(pid, {})
            lines = journeys.simulate(platform.journeys, data.definition or name, pid, traits)
            return {"profile_id": pid, "decisions": lines}

        result: dict[str, Any] = await _call(run)
        return result


class TasksController(Controller):
    """/api/v1/tasks: tasks journeys created for store associates and the call centre."""

    path = "/api/v1/tasks"
    tags = ["journeys"]

    @get("/", summary="Open tasks, by queue (store, call_center) and store")
    async def open_tasks(
        self,
        request: Request[Any, Any, Any],
        queue: FromQuery[str | None] = None,
        store_id: FromQuery[str | None] = None,
    ) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await _call(journeys.tasks, _platform(request).state, queue, store_id)
        return result
