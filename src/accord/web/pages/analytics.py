"""Analytics: attribution models compared channel by channel, the channel scorecard, purchase rate by reach."""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from datetime import UTC, datetime
from typing import Any

from litestar import Controller, Request, Response, get

from accord.analytics.errors import AnalyticsError
from accord.analytics.options import parse_window
from accord.platform import Platform
from accord.storage.events import EventStore
from accord.users.roles import Permission
from accord.web import charts
from accord.web.render import gettext_for, render

WINDOWS = ("7d", "30d", "90d")
MAX_STALE_SECONDS = 60.0

# per event store (weakly held) and lookback window: (computed at, event store cursors then, figures)
_cache: weakref.WeakKeyDictionary[Any, dict[str, tuple[float, tuple[int, int], dict[str, Any]]]] = (
    weakref.WeakKeyDictionary()
)
_cache_lock = threading.Lock()


def scorecard(events: EventStore, window: str) -> dict[str, Any]:
    """Every attribution model and the channel scorecard over all conversions (one run of the models)."""
    from accord.analytics import service as analytics  # numpy, scipy: loaded on first use, not at startup

    try:
        card = analytics.channel_scorecard(events, parse_window(window), model="all", reference_model="markov")
    except AnalyticsError as exc:
        return {"problem": exc.message, "computed_at": datetime.now(UTC)}
    comparison = [
        {"channel": row["channel"], "model": model, "conversions": round(float(credit["conversions"]), 2)}
        for row in card["channels"]
        for model, credit in row["attributed"].items()
    ]
    return {**card, "comparison": comparison, "problem": None, "computed_at": datetime.now(UTC)}


def cached_scorecard(events: EventStore, window: str) -> dict[str, Any]:
    """The figures, recomputed when new events were loaded and the last ones are over a minute old."""
    cursors = events.cursors()
    now = time.monotonic()
    with _cache_lock:
        hit = _cache.get(events, {}).get(window)
    if hit is not None and (hit[1] == cursors or now - hit[0] < MAX_STALE_SECONDS):
        return hit[2]
    data = scorecard(events, window)
    with _cache_lock:
        _cache.setdefault(events, {})[window] = (now, cursors, data)
    return data


class AnalyticsController(Controller):
    """/analytics (marketers, analysts, admins): the page at once, the figures by htmx while they compute."""

    path = "/analytics"
    include_in_schema = False
    opt = {"permission": Permission.read_customers}

    @get("/")
    async def page(self, request: Request[Any, Any, Any], window: str = "30d") -> Response[str]:
        window = window if window in WINDOWS else "30d"
        return render(request, "analytics.html", window=window, windows=WINDOWS)

    @get("/figures")
    async def figures(self, request: Request[Any, Any, Any], window: str = "30d") -> Response[str]:
        platform: Platform = request.app.state.platform
        window = window if window in WINDOWS else "30d"
        data = await asyncio.to_thread(cached_scorecard, platform.events, window)
        _ = gettext_for(request)
        context: dict[str, Any] = {"data": data, "window": window}
        if not data["problem"]:
            reference = [
                {"channel": r["channel"], "conversions": round(float(r["attributed"]["markov"]["conversions"]), 1)}
                for r in data["channels"]
            ]
            context |= {
                "attribution_chart": charts.grouped_bars(
                    data["comparison"],
                    "channel",
                    "conversions",
                    "model",
                    _("Channel"),
                    _("Attributed conversions"),
                    _("Model"),
                ),
                "markov_chart": charts.bars(reference, "channel", "conversions", _("Channel"), _("Conversions")),
                "models": list(dict.fromkeys(c["model"] for c in data["comparison"])),
            }
        return render(request, "partials/analytics_figures.html", **context)
