"""Analytics endpoints under /api/v1/analytics: attribution, channel scorecard, lift, CLV scores, RFM, cohorts."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import msgspec
import numpy as np
from litestar import Controller, Request, Response, get, post
from litestar.exceptions import HTTPException

from accord.analytics import charts, service
from accord.analytics.errors import AnalyticsError
from accord.analytics.lift import lift_report
from accord.analytics.store import DEFAULT_CONVERSION, parse_window
from accord.platform import Platform

T = TypeVar("T")


class AnalyticsApiError(HTTPException):
    """An analysis the user asked for that cannot be run as asked (400 with the analytics error code)."""

    def __init__(self, exc: AnalyticsError) -> None:
        super().__init__(status_code=exc.status_code, detail=exc.message, extra={"code": exc.code})


class LiftIn(msgspec.Struct):
    """Group label per member, metric values per member (0/1 flags or amounts), and the control group's label."""

    control: str
    groups: list[str]
    metrics: dict[str, list[float]]
    confidence: float = 0.95


class ClvIn(msgspec.Struct):
    """Options of a scoring run."""

    conversion: str = DEFAULT_CONVERSION
    time_unit: str = "week"
    horizon_days: float = 365.0
    discount_rate: float = 0.0
    write: bool = True


def _platform(request: Request[Any, Any, Any]) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


async def _run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    try:
        return await asyncio.to_thread(fn, *args, **kwargs)
    except AnalyticsError as exc:
        raise AnalyticsApiError(exc) from exc


def _time(text: str | None, what: str) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise AnalyticsApiError(service.InvalidInput(f"{what} must be an ISO date-time, not {text!r}")) from exc
    if value.tzinfo is None:
        raise AnalyticsApiError(service.InvalidInput(f"{what} must carry a time zone (e.g. ...Z or +00:00)"))
    return value


def _window(text: str) -> Any:
    try:
        return parse_window(text)
    except AnalyticsError as exc:
        raise AnalyticsApiError(exc) from exc


class AnalyticsController(Controller):
    """Analyses over the event store (bearer token)."""

    path = "/api/v1/analytics"
    tags = ["analytics"]

    @get("/attribution", summary="Attribution of conversions to channels, by model (first ... markov, shapley, all)")
    async def attribution(
        self,
        request: Request[Any, Any, Any],
        model: str = "all",
        window: str = "30d",
        conversion: str = DEFAULT_CONVERSION,
        start: str | None = None,
        end: str | None = None,
        order: int = 1,
        half_life: float = 7.0,
        currency: str | None = None,
    ) -> dict[str, Any]:
        return await _run(
            service.attribution_from_store,
            _platform(request).events,
            model,
            _window(window),
            conversion,
            _time(start, "start"),
            _time(end, "end"),
            currency,
            order=order,
            half_life=half_life,
        )

    @get("/attribution.svg", summary="Chart comparing the attribution models (SVG)", media_type="image/svg+xml")
    async def attribution_chart(
        self, request: Request[Any, Any, Any], window: str = "30d", conversion: str = DEFAULT_CONVERSION
    ) -> Response[bytes]:
        doc = await _run(service.attribution_from_store, _platform(request).events, "all", _window(window), conversion)
        svg = await asyncio.to_thread(charts.attribution_chart, doc["models"], "svg")
        return Response(svg, media_type="image/svg+xml")

    @get("/channels", summary="Channel scorecard and purchase rate by number of channels reached")
    async def channels(
        self,
        request: Request[Any, Any, Any],
        window: str = "30d",
        conversion: str = DEFAULT_CONVERSION,
        start: str | None = None,
        end: str | None = None,
    ) -> dict[str, Any]:
        return await _run(
            service.channel_scorecard,
            _platform(request).events,
            _window(window),
            conversion,
            _time(start, "start"),
            _time(end, "end"),
        )

    @post("/lift", summary="Lift of each group against the control group (z-test for 0/1, Welch for amounts)")
    async def lift(self, data: LiftIn) -> dict[str, Any]:
        metrics = {k: np.asarray(v, dtype=np.float64) for k, v in data.metrics.items()}
        for name, values in metrics.items():
            if len(values) != len(data.groups):
                raise AnalyticsApiError(service.InvalidInput(f"metric {name!r} needs one value per group entry"))
        return await _run(lift_report, data.groups, metrics, data.control, data.confidence)

    @post("/clv", summary="Fit BG/NBD + Gamma-Gamma on purchases and write the scores to profiles", status_code=200)
    async def clv(self, request: Request[Any, Any, Any], data: ClvIn) -> dict[str, Any]:
        platform = _platform(request)
        summary, _rows = await _run(
            service.clv_from_store,
            platform.events,
            platform.state if data.write else None,
            data.conversion,
            None,
            data.time_unit,
            data.horizon_days,
            data.discount_rate,
        )
        return summary

    @get("/scores/{profile_id:str}", summary="Computed scores of one profile (CLV, P(alive), churn, next purchase)")
    async def scores(self, request: Request[Any, Any, Any], profile_id: str) -> dict[str, Any]:
        found = await _run(service.read_scores, _platform(request).state, [profile_id])
        if profile_id not in found:
            raise HTTPException(
                status_code=404, detail=f"no scores for profile {profile_id}", extra={"code": "not_found"}
            )
        row = found[profile_id]
        return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}

    @get("/rfm", summary="RFM scores and segments per profile")
    async def rfm(self, request: Request[Any, Any, Any], conversion: str = DEFAULT_CONVERSION) -> list[dict[str, Any]]:
        return await _run(service.rfm_from_store, _platform(request).events, conversion)

    @get("/cohorts", summary="Retention by first-purchase month or first channel")
    async def cohorts(
        self,
        request: Request[Any, Any, Any],
        by: str = "month",
        periods: int = 12,
        conversion: str = DEFAULT_CONVERSION,
    ) -> list[dict[str, Any]]:
        return await _run(service.cohorts_from_store, _platform(request).events, by, periods, conversion)

    @get("/recommendations/evaluation", summary="Precision@k and recall@k of the recommender on held-out purchases")
    async def recommendation_quality(self, request: Request[Any, Any, Any], k: int = 10) -> dict[str, Any]:
        return await _run(service.evaluate_recommendations, _platform(request).events, k)

    @get("/recommendations/{profile_id:str}", summary="Products to recommend to a profile (optionally only these SKUs)")
    async def recommendations(
        self, request: Request[Any, Any, Any], profile_id: str, k: int = 10, available: str | None = None
    ) -> dict[str, Any]:
        skus = [x.strip() for x in available.split(",") if x.strip()] if available else None
        return await _run(service.recommendations_from_store, _platform(request).events, profile_id, k, skus)

    @get("/forecast", summary="Weekly demand forecast per store and SKU, hold-out accuracy and safety stock")
    async def forecast(
        self,
        request: Request[Any, Any, Any],
        horizon: int = 4,
        lead_time_weeks: float = 1.0,
        service_level: float = 0.95,
    ) -> dict[str, Any]:
        return await _run(
            service.forecast_from_store, _platform(request).events, horizon, lead_time_weeks, service_level
        )
