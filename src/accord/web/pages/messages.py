"""Messages: templates with a preview per locale and channel, broadcasts (launch, list) and their delivery funnel."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotFoundException
from litestar.params import Body, FromPath, FromQuery
from litestar.response import Redirect

from accord.messaging.broadcasts import broadcast_report, create_broadcast, list_broadcasts
from accord.messaging.service import MessagingError
from accord.platform import Platform
from accord.segments import service as segments
from accord.users.roles import Permission, allows
from accord.web import charts
from accord.web.render import gettext_for, render, session_of

QUEUED = (
    "queued",
    "sending",
    "sent",
    "delivered",
    "opened",
    "clicked",
    "bounced",
    "failed",
    "complained",
    "unsubscribed",
)
SENT = ("sent", "delivered", "opened", "clicked", "bounced", "complained", "unsubscribed")
DELIVERED = ("delivered", "opened", "clicked")


class BroadcastForm(msgspec.Struct):
    """Send TEMPLATE to the members of SEGMENT now, keeping HOLDOUT percent out as the control group."""

    name: str = ""
    template: str = ""
    segment: str = ""
    holdout: str = "0"
    csrf_token: str = ""


def funnel(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Queued, sent, delivered, opened, clicked over every variant (held out and dropped decisions are not messages)."""
    queued = sent = delivered = opened = clicked = 0
    for variant in report["variants"].values():
        by_status = variant["by_status"]
        queued += sum(n for s, n in by_status.items() if s in QUEUED)
        sent += sum(n for s, n in by_status.items() if s in SENT)
        delivered += sum(n for s, n in by_status.items() if s in DELIVERED)
        opened += variant["opened"]
        clicked += variant["clicked"]
    return [
        {"stage": "queued", "messages": queued},
        {"stage": "sent", "messages": sent},
        {"stage": "delivered", "messages": delivered},
        {"stage": "opened", "messages": opened},
        {"stage": "clicked", "messages": clicked},
    ]


def overview(platform: Platform) -> dict[str, Any]:
    """Templates, the newest broadcasts and the segments a broadcast may go to."""
    return {
        "templates": platform.messaging.list_templates(),
        "broadcasts": list_broadcasts(platform.messaging, 50),
        "segments": segments.list_segments(platform.state),
    }


class MessagesController(Controller):
    """/messages (marketers, analysts, admins; launching a broadcast needs the change permission)."""

    path = "/messages"
    include_in_schema = False
    opt = {"permission": Permission.read_customers}

    @get("/")
    async def list_page(self, request: Request[Any, Any, Any]) -> Response[str]:
        platform: Platform = request.app.state.platform
        data = await asyncio.to_thread(overview, platform)
        session = session_of(request)
        assert session is not None
        return render(
            request, "messages.html", **data, problem=None, can_change=allows(session.user.role, Permission.change)
        )

    @get("/templates/{name:str}")
    async def template_page(
        self, request: Request[Any, Any, Any], name: FromPath[str], locale: FromQuery[str | None] = None
    ) -> Response[str]:
        platform: Platform = request.app.state.platform
        messaging = platform.messaging

        def load() -> tuple[dict[str, Any], dict[str, Any]]:
            described = messaging.describe_template(messaging.template(name))
            return described, messaging.preview(name, locale=locale or described["default_locale"])

        try:
            described, preview = await asyncio.to_thread(load)
        except MessagingError as exc:
            if exc.status == 404:
                raise NotFoundException(detail=exc.message) from exc
            _ = gettext_for(request)
            return render(request, "error.html", status_code=exc.status, title=_("Preview failed"), detail=exc.message)
        return render(request, "template.html", tpl=described, preview=preview)

    @post("/broadcasts", status_code=303)
    async def launch(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[BroadcastForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Response[Any]:
        platform: Platform = request.app.state.platform
        _ = gettext_for(request)
        problem = None
        try:
            holdout = float(data.holdout or 0)
        except ValueError:
            holdout, problem = 0.0, _("The holdout must be a number of percent (0 to 99).")
        if not problem and not (data.name.strip() and data.template and data.segment):
            problem = _("Name the broadcast and choose a template and a segment.")
        if problem is None:
            try:
                done = await asyncio.to_thread(
                    create_broadcast,
                    platform.messaging,
                    data.name.strip(),
                    data.template,
                    {"segment": data.segment},
                    holdout_percent=holdout,
                )
            except MessagingError as exc:
                problem = exc.message
            else:
                return Redirect(f"/messages/broadcasts/{done['id']}", status_code=303)
        listing = await asyncio.to_thread(overview, platform)
        return render(request, "messages.html", status_code=422, **listing, problem=problem, can_change=True)

    @get("/broadcasts/{broadcast_id:str}")
    async def broadcast_page(self, request: Request[Any, Any, Any], broadcast_id: FromPath[str]) -> Response[str]:
        platform: Platform = request.app.state.platform
        try:
            report = await asyncio.to_thread(broadcast_report, platform.messaging, broadcast_id)
        except MessagingError as exc:
            raise NotFoundException(detail=exc.message) from exc
        _ = gettext_for(request)
        stages = funnel(report)
        return render(
            request,
            "broadcast.html",
            report=report,
            stages=stages,
            funnel_chart=charts.bars(stages, "stage", "messages", _("Stage"), _("Messages")),
        )
