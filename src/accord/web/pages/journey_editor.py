"""The journey editor: the YAML definition with live validation and a re-drawn flow diagram, saved as a version."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any
from urllib.parse import quote

import msgspec
import yaml
from litestar import Controller, Request, Response, get, post
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotFoundException
from litestar.params import Body, FromPath
from litestar.response import Redirect

from accord.journeys import service as journeys
from accord.journeys.definition import DefinitionError, Journey
from accord.journeys.errors import JourneyError
from accord.platform import Platform
from accord.users.roles import Permission, allows
from accord.web.flow_svg import flow_svg
from accord.web.pages.journeys import flow
from accord.web.render import Formats, gettext_for, locale_of, render, session_of

MAX_DEFINITION = 200_000
TOP_ORDER = ("name", "description", "trigger", "entry", "exit", "goal", "holdout", "steps")
STEP_ORDER = ("id",)
STEP_JUMPS = ("then", "else", "next")
BODY_ORDER = ("template", "channels", "purpose", "event", "timeout", "duration", "until_local", "until_trait", "url")
STARTER = """\
name: new-journey
description: what it is for
trigger:
  event: Cart Abandoned
entry: {reentry: after_exit}
exit:
  - event: Order Completed
holdout: 10%
steps:
  - id: wait-1h
    wait: 1h
  - id: reminder
    send: {template: cart-reminder, channels: [push, email]}
  - id: done
    exit: true
"""


class DefinitionForm(msgspec.Struct):
    """The journey as written in the editor (YAML or JSON, exactly what `accord journey apply` reads)."""

    definition: str = ""
    original: str = ""  # the journey being edited ("" for a new one)
    csrf_token: str = ""


class StepForm(msgspec.Struct):
    """The editor's text and one step described by the step form, to be written into it."""

    definition: str = ""
    original: str = ""
    step_kind: str = "send"
    step_id: str = ""
    step_after: str = ""
    step_template: str = ""
    step_channels: str = ""
    step_duration: str = ""
    step_event: str = ""
    step_timeout: str = ""
    step_then: str = ""
    step_else: str = ""
    step_traits: str = ""
    step_queue: str = "store"
    step_title: str = ""
    step_url: str = ""
    csrf_token: str = ""


FORM_KINDS = ("send", "wait", "wait_until", "update_profile", "task", "webhook", "goal", "exit")


def step_from_form(form: StepForm, taken: set[str]) -> dict[str, Any]:
    """The step the form describes, as the definition language writes it (the parser checks it afterwards)."""
    kind = form.step_kind
    if kind not in FORM_KINDS:
        raise DefinitionError("step", f"the form writes {', '.join(FORM_KINDS)} steps; write {kind!r} in YAML")
    body: Any
    extra: dict[str, Any] = {}
    if kind == "send":
        channels = [c.strip() for c in form.step_channels.split(",") if c.strip()] or ["best"]
        body = {"template": form.step_template.strip(), "channels": channels}
    elif kind == "wait":
        body = form.step_duration.strip()
    elif kind == "wait_until":
        body = {"event": form.step_event.strip(), "timeout": form.step_timeout.strip()}
        extra = {k: v for k, v in (("then", form.step_then.strip()), ("else", form.step_else.strip())) if v}
    elif kind == "update_profile":
        try:
            traits = yaml.safe_load(form.step_traits) if form.step_traits.strip() else None
        except yaml.YAMLError:
            traits = None
        if not isinstance(traits, dict):
            raise DefinitionError("update_profile.traits", "write one `name: value` per line")
        body = {"traits": traits}
    elif kind == "task":
        body = {"queue": form.step_queue, "title": form.step_title.strip()}
    elif kind == "webhook":
        body = {"url": form.step_url.strip()}
    elif kind == "goal":
        body = form.step_title.strip() or "goal"
    else:
        body = True
    step_id = form.step_id.strip()
    if not step_id:
        number = 1
        while f"{kind.replace('_', '-')}-{number}" in taken:
            number += 1
        step_id = f"{kind.replace('_', '-')}-{number}"
    return {"id": step_id, kind: body, **extra}


def add_step(text: str, form: StepForm) -> str:
    """TEXT with the form's step inserted after STEP_AFTER (blank: before a final exit, else at the end)."""
    data = yaml.safe_load(text)
    steps = data.get("steps") if isinstance(data, dict) else None
    if not isinstance(steps, list):
        raise DefinitionError("steps", "a non-empty list of steps")
    ids = [str(s.get("id")) for s in steps if isinstance(s, dict)]
    step = step_from_form(form, set(ids))
    after = form.step_after.strip()
    if after:
        if after not in ids:
            raise DefinitionError("step", f"there is no step {after!r} to add it after (steps: {', '.join(ids)})")
        position = ids.index(after) + 1
    elif steps and isinstance(steps[-1], dict) and "exit" in steps[-1]:
        position = len(steps) - 1
    else:
        position = len(steps)
    data["steps"] = [*steps[:position], step, *steps[position:]]
    return definition_yaml(data)


def _ordered(mapping: dict[str, Any], first: tuple[str, ...], last: tuple[str, ...] = ()) -> dict[str, Any]:
    keys = [k for k in first if k in mapping]
    keys += [k for k in mapping if k not in first and k not in last]
    keys += [k for k in last if k in mapping and k not in first]
    return {k: mapping[k] for k in keys}


def definition_yaml(definition: dict[str, Any]) -> str:
    """A saved definition (stored with sorted keys) as readable YAML: name first, steps last, each step's id first."""
    data = _ordered(definition, TOP_ORDER)
    if isinstance(data.get("steps"), list):
        data["steps"] = [_step_yaml(s) if isinstance(s, dict) else s for s in data["steps"]]
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100)


def _step_yaml(step: dict[str, Any]) -> dict[str, Any]:
    """A step with its id first and its jumps last; a send's template before its channels, and so on."""
    ordered = _ordered(step, STEP_ORDER, STEP_JUMPS)
    return {k: _ordered(v, BODY_ORDER) if isinstance(v, dict) else v for k, v in ordered.items()}


def _canonical(source: dict[str, Any]) -> str:
    return json.dumps(source, sort_keys=True, default=str)


def _saved(platform: Platform, name: str) -> dict[str, Any] | None:
    try:
        return journeys.get(platform.state, name)
    except JourneyError:
        return None


def parse(text: str) -> Journey:
    """The editor's text as a validated journey; a DefinitionError says the field, the line and why."""
    if len(text) > MAX_DEFINITION:
        raise DefinitionError("(top)", f"the definition is too long (at most {MAX_DEFINITION:,} characters)")
    return journeys.definition_of(text)


def error_view(exc: JourneyError) -> dict[str, Any]:
    """Line, field and reason of a definition error, as the domain's parser reports them."""
    if isinstance(exc, DefinitionError):
        reason = exc.message.split(": ", 1)[1] if ": " in exc.message else exc.message
        return {"line": exc.line, "path": exc.path, "reason": reason}
    return {"line": None, "path": "", "reason": exc.message}


def try_preview(platform: Platform, text: str, number: Any, labels: tuple[str, str]) -> dict[str, Any]:
    """Validate the text and draw its flow (with the saved journey's counts per step id); nothing is saved."""
    try:
        journey = parse(text)
    except JourneyError as exc:
        return {"error": error_view(exc)}
    saved = _saved(platform, journey.name)
    stats = journeys.stats(platform.state, journey.name) if saved else {"steps": []}
    steps = flow(journey.source, stats)
    unchanged = saved is not None and _canonical(journey.source) == _canonical(saved["definition"])
    return {
        "error": None,
        "name": journey.name,
        "steps": steps,
        "diagram": flow_svg(steps, labels[0], labels[1], number),
        "saved": saved,
        "unchanged": unchanged,
        "next_version": (saved["version"] + (0 if unchanged else 1)) if saved else 1,
    }


class JourneyEditorController(Controller):
    """/journeys/new, /journeys/{name}/edit, the live check and diagram, and save as a new version."""

    path = "/journeys"
    include_in_schema = False
    opt = {"permission": Permission.read_customers}

    @get("/new")
    async def new_page(self, request: Request[Any, Any, Any]) -> Response[str]:
        return await self._editor(request, None, STARTER, None)

    @get("/{name:str}/edit")
    async def edit_page(self, request: Request[Any, Any, Any], name: FromPath[str]) -> Response[str]:
        platform: Platform = request.app.state.platform
        saved = await asyncio.to_thread(_saved, platform, name)
        if saved is None:
            raise NotFoundException(detail=gettext_for(request)("No journey named {name}.").format(name=name))
        return await self._editor(request, saved, definition_yaml(saved["definition"]), None)

    @post("/preview", opt={"write_permission": None}, status_code=200)
    async def preview(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[DefinitionForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Response[str]:
        """The live check: reads only, so every role that may open the editor may use it."""
        platform: Platform = request.app.state.platform
        result = await asyncio.to_thread(try_preview, platform, data.definition, *self._drawing(request))
        return render(request, "partials/journey_check.html", check=result)

    @post("/steps", opt={"write_permission": None}, status_code=200)
    async def step_form(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[StepForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Response[str]:
        """The step form: writes a step into the editor's text and checks it; nothing is saved."""
        platform: Platform = request.app.state.platform
        drawing = self._drawing(request)

        def run() -> dict[str, Any]:
            current = try_preview(platform, data.definition, *drawing)
            if current["error"]:
                return {**current, "step_refused": True}
            try:
                text = add_step(data.definition, data)
            except JourneyError as exc:
                return {"error": error_view(exc), "step_refused": True}
            checked = try_preview(platform, text, *drawing)
            if checked["error"]:  # its line would be of a text the editor does not show
                return {"error": {**checked["error"], "line": None}, "step_refused": True}
            return {**checked, "new_text": text}

        result = await asyncio.to_thread(run)
        return render(request, "partials/journey_check.html", check=result)

    @post("/", status_code=303)
    async def save(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[DefinitionForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Response[Any]:
        """Save through the journeys domain's write path (`accord journey apply`, POST /api/v1/journeys)."""
        platform: Platform = request.app.state.platform
        _ = gettext_for(request)

        def run() -> dict[str, Any]:
            journey = parse(data.definition)
            if journey.name != data.original and _saved(platform, journey.name) is not None:
                raise DefinitionError(
                    "name", _("a journey named {name} already exists; open it to edit it").format(name=journey.name)
                )
            return journeys.apply(platform.state, data.definition)

        try:
            saved = await asyncio.to_thread(run)
        except JourneyError as exc:
            original = await asyncio.to_thread(_saved, platform, data.original) if data.original else None
            return await self._editor(request, original, data.definition, error_view(exc), status=422)
        flag = "saved" if saved["changed"] else "unchanged"
        return Redirect(f"/journeys/{quote(saved['name'], safe='')}?{flag}=1", status_code=303)

    def _drawing(self, request: Request[Any, Any, Any]) -> tuple[Any, tuple[str, str]]:
        _ = gettext_for(request)
        return Formats(locale_of(request)).number, (_("passed"), _("waiting"))

    async def _editor(
        self,
        request: Request[Any, Any, Any],
        saved: dict[str, Any] | None,
        text: str,
        error: dict[str, Any] | None,
        status: int = 200,
    ) -> Response[str]:
        session = session_of(request)
        assert session is not None
        platform: Platform = request.app.state.platform
        check = (
            {"error": error} if error else await asyncio.to_thread(try_preview, platform, text, *self._drawing(request))
        )
        return render(
            request,
            "journey_editor.html",
            status_code=status,
            saved=saved,
            text=text,
            check=check,
            oob=False,
            form_kinds=FORM_KINDS,
            template_names=[t["name"] for t in await asyncio.to_thread(platform.messaging.list_templates)],
            can_change=allows(session.user.role, Permission.change),
        )
