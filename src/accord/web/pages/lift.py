"""Lift outside journeys: every broadcast and journey holdout test, lift per channel and the global control group."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from litestar import Controller, Request, Response, get
from litestar.params import FromQuery

from accord.analytics.errors import AnalyticsError
from accord.analytics.options import DEFAULT_CONVERSION, parse_window
from accord.platform import Platform
from accord.users.roles import Permission
from accord.web import insight_charts
from accord.web.figures import Figures
from accord.web.render import gettext_for, render

WINDOWS = ("3d", "7d", "14d", "30d")
CONFIDENCE = 0.95
MAX_STALE_SECONDS = 60.0
SHOWN_TESTS = 200  # the newest tests in the table (a full demo has hundreds of campaigns)

FIRST_WAIT = 0.2  # seconds a request with no figures yet waits for them before the progress note answers
FIGURES = Figures("lift")  # per event store and window


def lift_of_test(test: dict[str, Any]) -> dict[str, Any] | None:
    """Conversion lift of one listed holdout test (treated against held out) with its interval; None if a group
    is empty."""
    from accord.analytics.lift import lift_from_counts

    counts = {"treated": (test["n"], test["converted"]), "holdout": (test["control_n"], test["control_converted"])}
    try:
        doc = lift_from_counts(counts, "holdout", "converted", CONFIDENCE)
    except AnalyticsError:
        return None
    metric: dict[str, Any] = doc["treatments"][0]["metrics"]["converted"]
    return metric


def lift_figures(platform: Platform, window: str) -> dict[str, Any]:
    """Holdout tests of broadcasts and journeys (conversions within WINDOW of each send), lift pooled per channel,
    and the global control group over the last 30 days of events; each part with its problem when it cannot run."""
    from accord.analytics import holdouts
    from accord.analytics import service as analytics
    from accord.analytics_sources import holdout_tests, in_global_control

    out: dict[str, Any] = {"computed_at": datetime.now(UTC), "confidence": CONFIDENCE, "problem": None}
    start, end = datetime(1970, 1, 1, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC)
    try:
        tests = holdout_tests(platform)(start, end)
        per_channel, listed = holdouts.lift_by_channel(
            platform.events, tests, parse_window(window), DEFAULT_CONVERSION, CONFIDENCE
        )
    except AnalyticsError as exc:
        out |= {"problem": exc.message, "channels": [], "tests": [], "tests_total": 0}
    else:
        out["channels"] = [{"channel": ch, **lift} for ch, lift in sorted(per_channel.items())]
        newest = sorted(listed, key=lambda t: (t["since"] or "", t["name"]), reverse=True)
        out["tests"] = [{**t, "lift": lift_of_test(t)} for t in newest[:SHOWN_TESTS]]
        out["tests_total"] = len(listed)
    try:
        out["global"] = analytics.global_control_lift(platform.events, in_global_control(platform), None, None,
                                                      DEFAULT_CONVERSION, CONFIDENCE)  # fmt: skip
        out["global_problem"] = None
    except AnalyticsError as exc:
        out |= {"global": None, "global_problem": exc.message}
    return out


def cached_lift_figures(platform: Platform, window: str) -> dict[str, Any] | None:
    """The figures, computed in the background (recomputed there when new events arrived and they are over a
    minute old); None while the first computation runs longer than FIRST_WAIT (the progress note asks again)."""
    return FIGURES.get(
        platform.events, window, lambda: lift_figures(platform, window), MAX_STALE_SECONDS, first_wait=FIRST_WAIT
    )


def forest_rows(data: dict[str, Any], _: Any) -> list[dict[str, Any]]:
    """One row per interval for the chart: each channel's pooled lift and the global control group's, in points."""
    rows = [
        {
            "what": ch["channel"],
            "lift": round(ch["lift_abs"] * 100, 3),
            "low": round(ch["ci_low"] * 100, 3),
            "high": round(ch["ci_high"] * 100, 3),
        }
        for ch in data["channels"]
    ]
    if data.get("global"):
        converted = next(
            (t["metrics"]["converted"] for t in data["global"]["treatments"] if "converted" in t["metrics"]), None
        )
        if converted:
            rows.append(
                {
                    "what": _("global control"),
                    "lift": round(converted["lift_abs"] * 100, 3),
                    "low": round(converted["ci_low"] * 100, 3),
                    "high": round(converted["ci_high"] * 100, 3),
                }
            )
    return rows


class LiftController(Controller):
    """/analytics/lift (marketers, analysts, admins): the page at once, the figures by htmx while they compute."""

    path = "/analytics/lift"
    include_in_schema = False
    opt = {"permission": Permission.read_customers}

    @get("/")
    async def page(self, request: Request[Any, Any, Any], window: FromQuery[str] = "7d") -> Response[str]:
        window = window if window in WINDOWS else "7d"
        return render(request, "lift.html", window=window, windows=WINDOWS, tab="lift")

    @get("/figures")
    async def figures(self, request: Request[Any, Any, Any], window: FromQuery[str] = "7d") -> Response[str]:
        platform: Platform = request.app.state.platform
        window = window if window in WINDOWS else "7d"
        data = await asyncio.to_thread(cached_lift_figures, platform, window)
        _ = gettext_for(request)
        if data is None:  # still measuring: the progress note stays and asks again shortly
            url = f"/analytics/lift/figures?window={window}"
            return render(request, "partials/figures_pending.html", url=url, message=_("Measuring every holdout test…"))
        rows = forest_rows(data, _)
        chart = (
            insight_charts.forest(rows, _("Conversion lift, percentage points"), _("Channel or group"))
            if rows
            else None
        )
        return render(request, "partials/lift_figures.html", data=data, window=window, forest_chart=chart)
