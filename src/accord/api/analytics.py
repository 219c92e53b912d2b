"""Analytics endpoints under /api/v1/analytics: attribution, channel scorecard, lift, CLV scores, RFM, cohorts."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import date, datetime
from typing import Any, TypeVar

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.exceptions import HTTPException
from litestar.params import FromPath, FromQuery, JSONBody

from accord.analytics.errors import AnalyticsError, InvalidInput
from accord.analytics.options import DEFAULT_CONVERSION, parse_window
from accord.platform import Platform

# The analyses import numpy, scipy, matplotlib, implicit and statsforecast: they load on first use, not at startup.

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


class SpendIn(msgspec.Struct):
    """Ad spend rows as a file would hold them: date, channel, cost (or cost_minor), currency, campaign."""

    rows: list[dict[str, Any]]
    source: str = "api"


class PathsIn(msgspec.Struct):
    """The rows of a paths file (one object per row) and the options of `accord analyze attribution --paths`."""

    rows: list[dict[str, Any]]
    path_col: str = "path"
    sep: str = ">"
    conversions_col: str | None = None
    nulls_col: str | None = None
    value_col: str | None = None
    model: str = "markov"
    order: int = 1
    half_life: float = 7.0
    keep_repeats: bool = False


class TransactionsIn(msgspec.Struct):
    """The rows of a transactions file and the options of `accord analyze clv --transactions`."""

    rows: list[dict[str, Any]]
    customer_col: str = "customer"
    date_col: str = "date"
    value_col: str | None = None
    calibration_end: str | None = None
    time_unit: str = "week"
    horizon_days: float = 365.0
    discount_rate: float = 0.0


class ClvIn(msgspec.Struct):
    """Options of a scoring run."""

    conversion: str = DEFAULT_CONVERSION
    time_unit: str = "week"
    horizon_days: float = 365.0
    discount_rate: float = 0.0
    write: bool = True
    top: int = 0  # also return this many customers' scores, highest value first


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
        raise AnalyticsApiError(InvalidInput(f"{what} must be an ISO date-time, not {text!r}")) from exc
    if value.tzinfo is None:
        raise AnalyticsApiError(InvalidInput(f"{what} must carry a time zone (e.g. ...Z or +00:00)"))
    return value


def _day(text: str | None, what: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise AnalyticsApiError(InvalidInput(f"{what} must be an ISO date (YYYY-MM-DD), not {text!r}")) from exc


def _messaging_error(exc: Exception) -> HTTPException:
    code, status, message = getattr(exc, "code", "invalid_request"), getattr(exc, "status", 400), str(exc)
    return HTTPException(status_code=status, detail=message, extra={"code": code})


def _window(text: str) -> Any:
    try:
        return parse_window(text)
    except AnalyticsError as exc:
        raise AnalyticsApiError(exc) from exc


async def _scorecard(
    platform: Platform,
    window: str,
    conversion: str,
    start: str | None = None,
    end: str | None = None,
    confidence: float = 0.95,
) -> dict[str, Any]:
    from accord.analytics import service
    from accord.analytics_sources import holdout_tests

    return await _run(
        service.channel_scorecard,
        platform.events,
        platform.state,
        _window(window),
        conversion,
        _time(start, "start"),
        _time(end, "end"),
        holdout_tests=holdout_tests(platform),
        confidence=confidence,
    )


async def _broadcast_lift(
    platform: Platform,
    name: str,
    window: str,
    conversion: str,
    control: str = "holdout",
    confidence: float = 0.95,
) -> dict[str, Any]:
    from accord.analytics import service
    from accord.analytics_sources import broadcast_groups
    from accord.messaging.service import MessagingError

    try:
        groups = await asyncio.to_thread(broadcast_groups, platform, name)
    except MessagingError as exc:
        raise _messaging_error(exc) from exc
    return await _run(service.broadcast_lift, platform.events, groups, _window(window), conversion, control, confidence)


async def _journey_lift(platform: Platform, name: str, confidence: float = 0.95) -> dict[str, Any]:
    from accord.analytics.lift import lift_from_counts
    from accord.journeys import service as journeys
    from accord.journeys.errors import JourneyError

    try:
        stats = await asyncio.to_thread(journeys.stats, platform.state, name)
    except JourneyError as exc:
        raise HTTPException(status_code=exc.status, detail=exc.message, extra={"code": exc.code}) from exc
    conversion = stats["conversion"]
    counts = {
        "journey": (conversion["journey"]["entered"], conversion["journey"]["converted"]),
        "holdout": (conversion["holdout"]["entered"], conversion["holdout"]["converted"]),
    }
    doc = await _run(lift_from_counts, counts, "holdout", "converted", confidence)
    return {"journey": name, **doc}


class AnalyticsController(Controller):
    """Analyses over the event store (bearer token)."""

    path = "/api/v1/analytics"
    tags = ["analytics"]

    @get("/attribution", summary="Attribution of conversions to channels, by model (first ... markov, shapley, all)")
    async def attribution(
        self,
        request: Request[Any, Any, Any],
        model: FromQuery[str] = "all",
        window: FromQuery[str] = "30d",
        conversion: FromQuery[str] = DEFAULT_CONVERSION,
        start: FromQuery[str | None] = None,
        end: FromQuery[str | None] = None,
        order: FromQuery[int] = 1,
        half_life: FromQuery[float] = 7.0,
        currency: FromQuery[str | None] = None,
    ) -> dict[str, Any]:
        from accord.analytics import service

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
        self,
        request: Request[Any, Any, Any],
        window: FromQuery[str] = "30d",
        conversion: FromQuery[str] = DEFAULT_CONVERSION,
    ) -> Response[bytes]:
        from accord.analytics import charts, service

        doc = await _run(service.attribution_from_store, _platform(request).events, "all", _window(window), conversion)
        svg = await asyncio.to_thread(charts.attribution_chart, doc["models"], "svg")
        return Response(svg, media_type="image/svg+xml")

    @get("/channels", summary="Channel scorecard and purchase rate by number of channels reached")
    async def channels(
        self,
        request: Request[Any, Any, Any],
        window: FromQuery[str] = "30d",
        conversion: FromQuery[str] = DEFAULT_CONVERSION,
        start: FromQuery[str | None] = None,
        end: FromQuery[str | None] = None,
        confidence: FromQuery[float] = 0.95,
    ) -> dict[str, Any]:
        return await _scorecard(_platform(request), window, conversion, start, end, confidence)

    @post("/spend", summary="Import ad spend rows (date, channel, cost or cost_minor, currency, campaign)",
          status_code=200)  # fmt: skip
    async def spend_import(self, request: Request[Any, Any, Any], data: JSONBody[SpendIn]) -> dict[str, Any]:
        from accord.analytics import service

        return await _run(service.import_spend, _platform(request).state, data.rows, data.source)

    @post("/spend.csv", summary="Import ad spend from a CSV body (first line names the columns)", status_code=200)
    async def spend_import_csv(self, request: Request[Any, Any, Any], source: FromQuery[str] = "api") -> dict[str, Any]:
        from accord.analytics import service
        from accord.analytics.spend import rows_from_csv_text

        try:
            text = (await request.body()).decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise AnalyticsApiError(InvalidInput("the CSV body is not UTF-8 text")) from exc
        rows = await _run(rows_from_csv_text, text)
        return await _run(service.import_spend, _platform(request).state, rows, source)

    @get("/spend", summary="Imported ad spend by day, channel and campaign (start..end inclusive, ISO dates)")
    async def spend(
        self, request: Request[Any, Any, Any], start: FromQuery[str | None] = None, end: FromQuery[str | None] = None
    ) -> list[dict[str, Any]]:
        from accord.analytics import service

        return await _run(service.read_spend, _platform(request).state, _day(start, "start"), _day(end, "end"))

    @post("/attribution/paths", summary="Attribution of posted paths (the rows of a paths file)", status_code=200)
    async def attribution_paths(self, data: JSONBody[PathsIn]) -> dict[str, Any]:
        from accord.analytics import service

        table = await _run(service.table_of_rows, data.rows)
        options = {"order": data.order, "half_life": data.half_life, "collapse_repeats": not data.keep_repeats}
        return await _run(
            service.attribution_from_table, table, data.path_col, data.sep, data.conversions_col, data.nulls_col,
            data.value_col, data.model, **options,
        )  # fmt: skip

    @post("/clv/transactions", summary="BG/NBD + Gamma-Gamma on posted transactions (the rows of a file)",
          status_code=200)  # fmt: skip
    async def clv_transactions(self, data: JSONBody[TransactionsIn]) -> dict[str, Any]:
        from accord.analytics import service

        table = await _run(service.table_of_rows, data.rows)
        summary, _rows = await _run(
            service.clv_from_table, table, data.customer_col, data.date_col, data.value_col, data.calibration_end,
            data.time_unit, data.horizon_days, data.discount_rate,
        )  # fmt: skip
        return summary

    @get("/lift/broadcast/{name:str}", summary="Conversion and revenue of a broadcast's groups against its holdout")
    async def broadcast_lift(
        self,
        request: Request[Any, Any, Any],
        name: FromPath[str],
        window: FromQuery[str] = "7d",
        conversion: FromQuery[str] = DEFAULT_CONVERSION,
        control: FromQuery[str] = "holdout",
        confidence: FromQuery[float] = 0.95,
    ) -> dict[str, Any]:
        return await _broadcast_lift(_platform(request), name, window, conversion, control, confidence)

    @get("/lift/global-control", summary="Everyone messaged against the global control group, over a period")
    async def global_control_lift(
        self,
        request: Request[Any, Any, Any],
        start: FromQuery[str | None] = None,
        end: FromQuery[str | None] = None,
        conversion: FromQuery[str] = DEFAULT_CONVERSION,
        confidence: FromQuery[float] = 0.95,
    ) -> dict[str, Any]:
        from accord.analytics import service
        from accord.analytics_sources import in_global_control

        platform = _platform(request)
        return await _run(
            service.global_control_lift, platform.events, in_global_control(platform), _time(start, "start"),
            _time(end, "end"), conversion, confidence,
        )  # fmt: skip

    @get("/sample-size", summary="Members needed per group to detect an effect (a rate with baseline, or sd)")
    async def sample_size(
        self,
        effect: FromQuery[float],
        baseline: FromQuery[float | None] = None,
        sd: FromQuery[float | None] = None,
        alpha: FromQuery[float] = 0.05,
        power: FromQuery[float] = 0.8,
    ) -> dict[str, Any]:
        from accord.analytics.lift import sample_size_means, sample_size_proportions

        if (baseline is None) == (sd is None):
            raise AnalyticsApiError(InvalidInput("give either baseline (a rate) or sd (an amount)"))
        if baseline is not None:
            n = await _run(sample_size_proportions, baseline, effect, alpha, power)
        else:
            n = await _run(sample_size_means, sd, effect, alpha, power)
        return {"per_group": n, "alpha": alpha, "power": power, "effect": effect}

    @get("/charts/{name:str}", summary="Chart as PNG, SVG or HTML: attribution, channels, cohorts, clv or lift "
         "(e.g. channels.svg; lift takes broadcast= or journey=)")  # fmt: skip
    async def chart(
        self,
        request: Request[Any, Any, Any],
        name: FromPath[str],
        window: FromQuery[str | None] = None,
        conversion: FromQuery[str] = DEFAULT_CONVERSION,
        by: FromQuery[str] = "month",
        periods: FromQuery[int] = 12,
        broadcast: FromQuery[str | None] = None,
        journey: FromQuery[str | None] = None,
        metric: FromQuery[str] = "converted",
    ) -> Response[bytes]:
        from accord.analytics import charts, service

        kind = name.rpartition(".")[0]
        fmt = await _run(charts.format_of, name)
        platform = _platform(request)
        if kind == "attribution":
            doc = await _run(
                service.attribution_from_store, platform.events, "all", _window(window or "30d"), conversion
            )
            body = await _run(charts.attribution_chart, doc["models"], fmt)
        elif kind == "channels":
            doc = await _scorecard(platform, window or "30d", conversion)
            body = await _run(charts.scorecard_chart, doc, fmt)
        elif kind == "cohorts":
            rows = await _run(service.cohorts_from_store, platform.events, by, periods, conversion)
            body = await _run(charts.cohort_chart, rows, fmt)
        elif kind == "clv":
            _summary, scored = await _run(service.clv_from_store, platform.events, None, conversion)
            body = await _run(charts.clv_chart, scored, fmt)
        elif kind == "lift" and (broadcast or journey):
            if broadcast:
                doc = await _broadcast_lift(platform, broadcast, window or "7d", conversion)
            else:
                doc = await _journey_lift(platform, str(journey))
            if not doc["treatments"] or metric not in doc["treatments"][0]["metrics"]:
                raise AnalyticsApiError(InvalidInput(f"no metric {metric!r} in this lift"))
            body = await _run(charts.lift_chart, doc, metric, fmt)
        else:
            raise AnalyticsApiError(
                InvalidInput("charts are attribution, channels, cohorts, clv and lift (with broadcast= or journey=)")
            )
        media = {"png": "image/png", "svg": "image/svg+xml", "html": "text/html; charset=utf-8"}[fmt]
        return Response(body, media_type=media)

    @post("/lift", summary="Lift of each group against the control group (z-test for 0/1, Welch for amounts)")
    async def lift(self, data: JSONBody[LiftIn]) -> dict[str, Any]:
        import numpy as np

        from accord.analytics.lift import lift_report

        metrics = {k: np.asarray(v, dtype=np.float64) for k, v in data.metrics.items()}
        for name, values in metrics.items():
            if len(values) != len(data.groups):
                raise AnalyticsApiError(InvalidInput(f"metric {name!r} needs one value per group entry"))
        return await _run(lift_report, data.groups, metrics, data.control, data.confidence)

    @get("/lift/journey/{name:str}", summary="Conversion of a journey's entrants against its holdout, with CI and test")
    async def journey_lift(
        self, request: Request[Any, Any, Any], name: FromPath[str], confidence: FromQuery[float] = 0.95
    ) -> dict[str, Any]:
        return await _journey_lift(_platform(request), name, confidence)

    @post("/clv", summary="Fit BG/NBD + Gamma-Gamma on purchases and write the scores to profiles", status_code=200)
    async def clv(self, request: Request[Any, Any, Any], data: JSONBody[ClvIn]) -> dict[str, Any]:
        from accord.analytics import service

        platform = _platform(request)
        summary, rows = await _run(
            service.clv_from_store,
            platform.events,
            platform.state if data.write else None,
            data.conversion,
            None,
            data.time_unit,
            data.horizon_days,
            data.discount_rate,
        )
        if data.top > 0:
            summary["top"] = sorted(rows, key=lambda r: -r["clv"])[: data.top]
        return summary

    @get("/scores/{profile_id:str}", summary="Computed scores of one profile (CLV, P(alive), churn, next purchase)")
    async def scores(self, request: Request[Any, Any, Any], profile_id: FromPath[str]) -> dict[str, Any]:
        from accord.analytics import service

        found = await _run(service.read_scores, _platform(request).state, [profile_id])
        if profile_id not in found:
            raise HTTPException(
                status_code=404, detail=f"no scores for profile {profile_id}", extra={"code": "not_found"}
            )
        row = found[profile_id]
        return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}

    @get("/rfm", summary="RFM scores and segments per profile")
    async def rfm(
        self, request: Request[Any, Any, Any], conversion: FromQuery[str] = DEFAULT_CONVERSION
    ) -> list[dict[str, Any]]:
        from accord.analytics import service

        return await _run(service.rfm_from_store, _platform(request).events, conversion)

    @get("/cohorts", summary="Retention by first-purchase month or first channel")
    async def cohorts(
        self,
        request: Request[Any, Any, Any],
        by: FromQuery[str] = "month",
        periods: FromQuery[int] = 12,
        conversion: FromQuery[str] = DEFAULT_CONVERSION,
    ) -> list[dict[str, Any]]:
        from accord.analytics import service

        return await _run(service.cohorts_from_store, _platform(request).events, by, periods, conversion)

    @get("/recommendations/evaluation", summary="Precision@k and recall@k of the recommender on held-out purchases")
    async def recommendation_quality(self, request: Request[Any, Any, Any], k: FromQuery[int] = 10) -> dict[str, Any]:
        from accord.analytics import service

        return await _run(service.evaluate_recommendations, _platform(request).events, k)

    @get("/recommendations/{profile_id:str}", summary="Products to recommend to a profile (optionally only these SKUs)")
    async def recommendations(
        self,
        request: Request[Any, Any, Any],
        profile_id: FromPath[str],
        k: FromQuery[int] = 10,
        available: FromQuery[str | None] = None,
        near: FromQuery[str | None] = None,
        radius_km: FromQuery[float] = 25.0,
    ) -> dict[str, Any]:
        from accord.analytics import service

        skus = [x.strip() for x in available.split(",") if x.strip()] if available else None
        stock: Callable[[str], dict[str, Any] | None] | None = None
        if near:
            from accord.commerce import service as commerce

            try:
                lat, lon = (float(x) for x in near.split(","))
            except ValueError as exc:
                raise AnalyticsApiError(InvalidInput(f"near must be LAT,LON, not {near!r}")) from exc
            state = _platform(request).state

            def where(sku: str) -> dict[str, Any] | None:
                found = commerce.availability(state, sku, lat, lon, limit=1, radius_km=radius_km)
                return found[0] if found else None

            stock = where

        return await _run(service.recommendations_from_store, _platform(request).events, profile_id, k, skus, stock)

    @get("/forecast", summary="Weekly demand forecast per store and SKU, hold-out accuracy and safety stock")
    async def forecast(
        self,
        request: Request[Any, Any, Any],
        horizon: FromQuery[int] = 4,
        lead_time_weeks: FromQuery[float] = 1.0,
        service_level: FromQuery[float] = 0.95,
    ) -> dict[str, Any]:
        from accord.analytics import service

        return await _run(
            service.forecast_from_store, _platform(request).events, horizon, lead_time_weeks, service_level
        )
