"""Segments: the list with sizes, and an editor of the rule language with a live count, inline errors and save."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import msgspec
import yaml
from litestar import Controller, Request, Response, get, post
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotFoundException
from litestar.params import Body, FromPath
from litestar.response import Redirect

from accord.platform import Platform
from accord.segments import service as segments
from accord.segments.engines import DuckDBEngine
from accord.segments.rules import RuleError, SegmentDefinition, parse_documents
from accord.users.roles import Permission, allows
from accord.web import charts
from accord.web.render import gettext_for, render, session_of

SAMPLE = 10
STARTER = """\
name: recent-buyers
description: ordered in the last 30 days
rule:
  event: Order Completed
  within: 30d
"""


class DefinitionForm(msgspec.Struct):
    """The segment as written in the editor (the rule language, YAML or JSON)."""

    definition: str = ""
    csrf_token: str = ""


def parse_definition(text: str) -> SegmentDefinition:
    """Exactly one segment definition from the editor's text; a RuleError says the line, the field and why."""
    if len(text) > 100_000:
        raise RuleError("", "the definition is too long (at most 100,000 characters)")
    found = parse_documents(text, "segment")
    if len(found) != 1:
        raise RuleError("", f"write one segment here, not {len(found)}")
    definition: SegmentDefinition = found[0]
    return definition


def definition_text(source: dict[str, Any]) -> str:
    """A saved definition as the editor shows it (YAML, in the order the user wrote it)."""
    return yaml.safe_dump(source, sort_keys=False, allow_unicode=True, default_flow_style=False)


def try_preview(platform: Platform, text: str) -> dict[str, Any]:
    """Count and sample of the rule (nothing saved), or the error that stops it."""
    try:
        definition = parse_definition(text)
        result = segments.preview(platform.state, DuckDBEngine(platform.events), definition, None, SAMPLE)
    except RuleError as exc:
        return {"error": exc}
    except segments.SegmentNotFound as exc:
        return {"error": RuleError("rule", str(exc))}
    return {"error": None, **result}


def _find(platform: Platform, name: str) -> dict[str, Any] | None:
    return next((s for s in segments.list_segments(platform.state) if s["name"] == name), None)


class SegmentsController(Controller):
    """/segments (marketers, analysts, admins; saving needs the change permission)."""

    path = "/segments"
    include_in_schema = False
    opt = {"permission": Permission.read_customers}

    @get("/")
    async def list_page(self, request: Request[Any, Any, Any]) -> Response[str]:
        platform: Platform = request.app.state.platform
        rows = await asyncio.to_thread(segments.list_segments, platform.state)
        session = session_of(request)
        assert session is not None
        return render(request, "segments.html", segments=rows, can_change=allows(session.user.role, Permission.change))

    @get("/new")
    async def new_page(self, request: Request[Any, Any, Any]) -> Response[str]:
        return self._editor(request, None, STARTER, None, [])

    @get("/{name:str}")
    async def edit_page(self, request: Request[Any, Any, Any], name: FromPath[str]) -> Response[str]:
        platform: Platform = request.app.state.platform
        saved = await asyncio.to_thread(_find, platform, name)
        if saved is None:
            raise NotFoundException(detail=gettext_for(request)("No segment named {name}.").format(name=name))
        history = await asyncio.to_thread(segments.size_history, platform.state, name, 500)
        members = await asyncio.to_thread(segments.members, platform.state, name, SAMPLE)
        return self._editor(request, saved, definition_text(saved["definition"]), None, history, members)

    @post("/preview", opt={"write_permission": None}, status_code=200)
    async def preview(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[DefinitionForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Response[str]:
        """The live count: reads only, so every role that may open the editor may preview."""
        platform: Platform = request.app.state.platform
        result = await asyncio.to_thread(try_preview, platform, data.definition)
        return render(request, "partials/segment_preview.html", preview=result)

    @post("/", status_code=303)
    async def save(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[DefinitionForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Response[Any]:
        platform: Platform = request.app.state.platform

        def run() -> dict[str, Any]:
            definition = parse_definition(data.definition)
            with platform.segments.lock:  # not while the runtime evaluates the same segments
                return segments.apply_segment(
                    platform.state, DuckDBEngine(platform.events), platform.journal, definition, None
                )

        try:
            saved = await asyncio.to_thread(run)
        except (RuleError, segments.SegmentNotFound) as exc:
            error = exc if isinstance(exc, RuleError) else RuleError("rule", str(exc))
            preview = {"error": error}
            return self._editor(request, None, data.definition, preview, [], status=422)
        return Redirect(f"/segments/{saved['name']}?saved=1", status_code=303)

    def _editor(
        self,
        request: Request[Any, Any, Any],
        saved: dict[str, Any] | None,
        text: str,
        preview: dict[str, Any] | None,
        history: list[dict[str, Any]],
        members: list[dict[str, Any]] | None = None,
        status: int = 200,
    ) -> Response[str]:
        session = session_of(request)
        assert session is not None
        _ = gettext_for(request)
        chart = (
            charts.line(
                [{"at": h["at"].isoformat(), "size": h["size"]} for h in history],
                x="at",
                y="size",
                x_title=_("Time (UTC)"),
                y_title=_("Members"),
            )
            if len(history) > 1
            else None
        )
        return render(
            request,
            "segment.html",
            status_code=status,
            saved=saved,
            text=text,
            preview=preview,
            history=history,
            size_chart=chart,
            members=members or [],
            just_saved=request.query_params.get("saved") == "1",
            can_change=allows(session.user.role, Permission.change),
        )
