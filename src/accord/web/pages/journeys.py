"""Journeys: the list, one journey as a flow of steps with counts on every step, start/pause/stop, holdout lift."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotFoundException
from litestar.params import Body, FromPath
from litestar.response import Redirect

from accord.journeys import service as journeys
from accord.journeys.errors import JourneyError
from accord.platform import Platform
from accord.users.roles import Permission, allows
from accord.web.flow_svg import flow_svg
from accord.web.render import Formats, gettext_for, locale_of, render, session_of


class StatusForm(msgspec.Struct):
    """The new status: active (start), paused or stopped."""

    status: str = ""
    csrf_token: str = ""


def _targets(spec: Any) -> list[tuple[str, str]]:
    """(label, step id) pairs a step's spec jumps to: then/else/goto keys, also inside lists of cases or paths."""
    found: list[tuple[str, str]] = []
    if isinstance(spec, dict):
        for key, value in spec.items():
            if key in ("then", "else", "goto", "next") and isinstance(value, str):
                found.append((key, value))
            elif isinstance(value, list | dict):
                found.extend(_targets(value))
    elif isinstance(spec, list):
        for item in spec:
            found.extend(_targets(item))
    return found


def _summary(kind: str, spec: dict[str, Any]) -> str:
    """A few words about what the step does."""
    body = spec.get(kind, spec)
    if kind == "send" and isinstance(body, dict):
        return f"{body.get('template', '')} → {', '.join(body.get('channels', []) or [])}".strip()
    if kind == "wait":
        return str(body)
    if kind == "wait_until" and isinstance(body, dict):
        return f"{body.get('event', body.get('segment', ''))} ≤ {body.get('timeout', '')}"
    return "" if isinstance(body, dict | list) or body is True else str(body)


def flow(definition: dict[str, Any], stats: dict[str, Any]) -> list[dict[str, Any]]:
    """The journey's steps in order with their counts and outgoing edges (the following step unless it jumps)."""
    counts = {s["step"]: s for s in stats.get("steps", [])}
    raw_steps = [s for s in definition.get("steps", []) if isinstance(s, dict)]
    steps: list[dict[str, Any]] = []
    for index, raw in enumerate(raw_steps):
        step_id = str(raw.get("id", index))
        kind = next((k for k in raw if k not in ("id", "then", "else", "next")), "step")
        edges = _targets(raw)
        following = raw_steps[index + 1].get("id") if index + 1 < len(raw_steps) else None
        if kind != "exit" and not any(label in ("then", "else", "next") for label, _t in edges) and following:
            edges.append(("", str(following)))
        count = counts.get(step_id, {"passed": 0, "waiting": 0, "outcomes": {}})
        steps.append(
            {
                "id": step_id,
                "kind": kind,
                "summary": _summary(kind, raw),
                "passed": count["passed"],
                "waiting": count["waiting"],
                "outcomes": count["outcomes"],
                "edges": edges,
            }
        )
    return steps


class JourneysController(Controller):
    """/journeys (marketers, analysts, admins; start/pause/stop needs the change permission)."""

    path = "/journeys"
    include_in_schema = False
    opt = {"permission": Permission.read_customers}

    @get("/")
    async def list_page(self, request: Request[Any, Any, Any]) -> Response[str]:
        platform: Platform = request.app.state.platform
        rows = await asyncio.to_thread(journeys.list_journeys, platform.state)
        return render(request, "journeys.html", journeys=rows)

    @get("/{name:str}")
    async def journey_page(self, request: Request[Any, Any, Any], name: FromPath[str]) -> Response[str]:
        platform: Platform = request.app.state.platform

        def load() -> tuple[dict[str, Any], dict[str, Any]]:
            return journeys.get(platform.state, name), journeys.stats(platform.state, name)

        try:
            journey, stats = await asyncio.to_thread(load)
        except JourneyError as exc:
            raise NotFoundException(detail=exc.message) from exc
        session = session_of(request)
        assert session is not None
        definition = journey["definition"]
        if isinstance(definition, str):
            definition = json.loads(definition)
        steps = flow(definition, stats)
        _ = gettext_for(request)
        return render(
            request,
            "journey.html",
            journey=journey,
            stats=stats,
            steps=steps,
            diagram=flow_svg(steps, _("passed"), _("waiting"), Formats(locale_of(request)).number),
            description=definition.get("description", ""),
            can_change=allows(session.user.role, Permission.change),
        )

    @post("/{name:str}/status", status_code=303)
    async def set_status(
        self,
        request: Request[Any, Any, Any],
        name: FromPath[str],
        data: Annotated[StatusForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Response[Any]:
        platform: Platform = request.app.state.platform
        _ = gettext_for(request)
        try:
            await asyncio.to_thread(journeys.set_status, platform.state, name, data.status)
        except JourneyError as exc:
            return render(
                request, "error.html", status_code=exc.status, title=_("Journey not changed"), detail=exc.message
            )
        return Redirect(f"/journeys/{name}", status_code=303)
