"""The overview: events per day by channel, active customers, revenue by channel."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Controller, Request, Response, get
from litestar.params import FromQuery

from accord.platform import Platform
from accord.users.roles import Permission
from accord.web import charts, metrics
from accord.web.render import gettext_for, render


class OverviewController(Controller):
    """/ (marketers, analysts, admins)."""

    include_in_schema = False
    opt = {"permission": Permission.read_customers}

    @get("/")
    async def overview(self, request: Request[Any, Any, Any], days: FromQuery[int] = 30) -> Response[str]:
        platform: Platform = request.app.state.platform
        days = min(max(days, 1), 366)
        data = await asyncio.to_thread(metrics.cached_overview, platform.events, days)
        _ = gettext_for(request)
        chart = charts.stacked_bars(
            data["per_day"], x="day", y="events", color="channel", x_title=_("Day (UTC)"), y_title=_("Events")
        )
        return render(
            request,
            "overview.html",
            data=data,
            events_chart=chart,
            totals_rows=[{"channel": c, "events": n} for c, n in metrics.channel_totals(data["per_day"])],
            days=days,
        )
