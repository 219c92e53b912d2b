"""Analytics: attribution models compared channel by channel, the channel scorecard, purchase rate by reach."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from litestar import Controller, Request, Response, get
from litestar.params import FromQuery

from accord.analytics.errors import AnalyticsError
from accord.analytics.options import parse_window
from accord.platform import Platform
from accord.storage.events import EventStore
from accord.users.roles import Permission
from accord.web import charts
from accord.web.figures import Figures
from accord.web.render import gettext_for, render

WINDOWS = ("7d", "30d", "90d")
MAX_STALE_SECONDS = 60.0
FIGURES = Figures("analytics")  # per event store and lookback window

CHURN_BINS = 10
COHORT_PERIODS = 6


def churn_distribution(scores: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Profiles per tenth of churn risk, from the scores `accord analyze clv` wrote (empty when never run)."""
    counts = [0] * CHURN_BINS
    for row in scores.values():
        risk = row.get("churn_risk")
        if risk is not None:
            counts[min(int(float(risk) * CHURN_BINS), CHURN_BINS - 1)] += 1
    if not any(counts):
        return []
    return [{"risk": f"{10 * i}-{10 * (i + 1)}%", "profiles": n} for i, n in enumerate(counts)]


def customers_figures(events: EventStore, state: Any) -> dict[str, Any]:
    """Retention by first-purchase month and the churn-risk distribution (each may be missing, with the reason)."""
    from accord.analytics import service as analytics

    out: dict[str, Any] = {"cohorts": [], "cohorts_problem": None}
    try:
        out["cohorts"] = analytics.cohorts_from_store(events, "month", COHORT_PERIODS)[-12:]
    except AnalyticsError as exc:
        out["cohorts_problem"] = exc.message
    out["churn"] = churn_distribution(analytics.read_scores(state))
    return out


def scorecard(events: EventStore, window: str, state: Any = None) -> dict[str, Any]:
    """Every attribution model and the channel scorecard over all conversions (one run of the models)."""
    from accord.analytics import service as analytics  # numpy, scipy: loaded on first use, not at startup

    extra = customers_figures(events, state) if state is not None else {"cohorts": [], "churn": []}
    try:
        card = analytics.channel_scorecard(
            events, state, window=parse_window(window), model="all", reference_model="markov"
        )
    except AnalyticsError as exc:
        return {"problem": exc.message, "computed_at": datetime.now(UTC), **extra}
    comparison = [
        {"channel": row["channel"], "model": model, "conversions": round(float(credit["conversions"]), 2)}
        for row in card["channels"]
        for model, credit in row["attributed"].items()
    ]
    return {**card, **extra, "comparison": comparison, "problem": None, "computed_at": datetime.now(UTC)}


def cached_scorecard(events: EventStore, window: str, state: Any = None) -> dict[str, Any] | None:
    """The figures, computed in the background and recomputed there when new events were loaded and they are
    over a minute old; None while the first computation runs (the progress note then asks again)."""
    return FIGURES.get(events, window, lambda: scorecard(events, window, state), MAX_STALE_SECONDS, first_wait=0)


class AnalyticsController(Controller):
    """/analytics (marketers, analysts, admins): the page at once, the figures by htmx while they compute."""

    path = "/analytics"
    include_in_schema = False
    opt = {"permission": Permission.read_customers}

    @get("/")
    async def page(self, request: Request[Any, Any, Any], window: FromQuery[str] = "30d") -> Response[str]:
        window = window if window in WINDOWS else "30d"
        return render(request, "analytics.html", window=window, windows=WINDOWS)

    @get("/figures")
    async def figures(self, request: Request[Any, Any, Any], window: FromQuery[str] = "30d") -> Response[str]:
        platform: Platform = request.app.state.platform
        window = window if window in WINDOWS else "30d"
        data = await asyncio.to_thread(cached_scorecard, platform.events, window, platform.state)
        if data is None:  # still computing: the progress note stays and asks again shortly
            return render(request, "partials/analytics_pending.html", window=window)
        _ = gettext_for(request)
        context: dict[str, Any] = {"data": data, "window": window, "periods": list(range(COHORT_PERIODS))}
        context["churn_chart"] = (
            charts.bars(data["churn"], "risk", "profiles", _("Churn risk"), _("Customers")) if data["churn"] else None
        )
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
