"""Customer value: the predicted lifetime value distribution beside churn risk buckets (BG/NBD + Gamma-Gamma)."""

from __future__ import annotations

import asyncio
import math
import statistics
from datetime import UTC, datetime
from typing import Any

from litestar import Controller, Request, Response, get

from accord.analytics.errors import AnalyticsError
from accord.platform import Platform
from accord.users.roles import Permission
from accord.web import insight_charts
from accord.web.figures import Figures
from accord.web.render import Formats, gettext_for, locale_of, render

CLV_BINS = 10
RISK_BUCKETS = ((0.0, 0.2), (0.2, 0.4), (0.4, 0.6), (0.6, 0.8), (0.8, 1.0001))
MAX_STALE_SECONDS = 300.0

FIRST_WAIT = 0.2  # seconds a request with no figures yet waits for them before the progress note answers
FIGURES = Figures("value")  # per event store


def scored_customers(platform: Platform) -> dict[str, Any]:
    """(CLV in minor units, churn risk) per scored customer: the scores `accord analyze clv` stored, else the
    models fitted now on every profile's purchases (nothing written)."""
    from accord.analytics import service as analytics

    stored = analytics.read_scores(platform.state)
    rows = [
        (float(r["clv_minor"]), float(r["churn_risk"]), r.get("currency"))
        for r in stored.values()
        if r.get("clv_minor") is not None and r.get("churn_risk") is not None
    ]
    if rows:
        currencies = [c for _v, _r, c in rows if c]
        currency = max(set(currencies), key=currencies.count) if currencies else None
        at = max((r["computed_at"] for r in stored.values() if r.get("computed_at")), default=None)
        return {"source": "stored", "currency": currency, "computed_at": at, "rows": [(v, r) for v, r, _c in rows]}
    summary, fitted = analytics.clv_from_store(platform.events, None)
    return {
        "source": "fitted",
        "currency": summary.get("currency"),
        "computed_at": datetime.now(UTC),
        "rows": [(float(r["clv"]), float(r["churn_risk"])) for r in fitted],
    }


def _nice_step(top: float, bins: int) -> float:
    """A round bin width (1, 2 or 5 times a power of ten) so that BINS bins cover TOP."""
    raw = max(top / bins, 1.0)
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def value_figures(scored: dict[str, Any]) -> dict[str, Any]:
    """CLV histogram (round bins up to the 95th percentile, the rest in an open last bin) and, per churn risk
    bucket, the customers and their predicted value (total, mean, median) — the value at risk of leaving."""
    rows = [(v, r) for v, r in scored["rows"] if math.isfinite(v) and math.isfinite(r)]
    values = sorted(v for v, _r in rows)
    out: dict[str, Any] = {k: scored[k] for k in ("source", "currency", "computed_at")}
    out["customers"] = len(rows)
    out["unscored"] = len(scored["rows"]) - len(rows)  # the models gave no finite value (e.g. one purchase only)
    if not rows:
        return out | {"clv_bins": [], "risk": [], "total": 0, "median": None}
    p95 = values[min(len(values) - 1, int(0.95 * len(values)))]
    step = _nice_step(p95, CLV_BINS)
    counts = [0] * (CLV_BINS + 1)
    for v in values:
        counts[min(int(max(v, 0.0) // step), CLV_BINS)] += 1
    while len(counts) > 1 and counts[-1] == 0:
        counts.pop()
    out["clv_bins"] = [
        {"low": i * step, "high": None if i == CLV_BINS else (i + 1) * step, "customers": n}
        for i, n in enumerate(counts)
    ]
    risk = []
    for low, high in RISK_BUCKETS:
        inside = [v for v, r in rows if low <= r < high]
        risk.append(
            {
                "low": low,
                "high": min(high, 1.0),
                "customers": len(inside),
                "clv_total": sum(inside),
                "clv_mean": statistics.fmean(inside) if inside else None,
                "clv_median": statistics.median(inside) if inside else None,
            }
        )
    return out | {"risk": risk, "total": sum(values), "median": statistics.median(values)}


def value_of(platform: Platform) -> dict[str, Any]:
    """The figures from the stored scores (or models fitted on the spot), or the reason there are none."""
    try:
        data = value_figures(scored_customers(platform))
        data["problem"] = None
    except AnalyticsError as exc:
        data = {"problem": exc.message, "customers": 0}
    return data


def cached_value_figures(platform: Platform) -> dict[str, Any] | None:
    """The figures, computed in the background (again when new events arrived and they are five minutes old);
    None while the first computation runs longer than FIRST_WAIT (the progress note asks again)."""
    return FIGURES.get(platform.events, "value", lambda: value_of(platform), MAX_STALE_SECONDS, first_wait=FIRST_WAIT)


def _major(minor: float, currency: str | None) -> float:
    from babel.numbers import get_currency_precision

    return minor / 10 ** (get_currency_precision(currency) if currency else 2)


def charts_of(data: dict[str, Any], fmt: Formats, _: Any) -> dict[str, Any]:
    """The two charts side by side: customers per CLV bin, customers per churn risk bucket."""
    currency = data.get("currency")

    def money(minor: float) -> str:
        return fmt.number(round(_major(minor, currency)))

    clv_rows = [
        {
            "bin": f"{money(b['low'])}–{money(b['high'])}" if b["high"] is not None else f"≥ {money(b['low'])}",
            "customers": b["customers"],
        }
        for b in data["clv_bins"]
    ]
    risk_rows = [
        {"bucket": f"{round(b['low'] * 100)}–{round(b['high'] * 100)}%", "customers": b["customers"]}
        for b in data["risk"]
    ]
    return {
        "clv_chart": insight_charts.histogram(
            clv_rows,
            "bin",
            "customers",
            _("Predicted lifetime value ({currency})").format(currency=currency or "–"),
            _("Customers"),
        ),
        "risk_chart": insight_charts.histogram(
            risk_rows, "bucket", "customers", _("Churn risk"), _("Customers"), colour="#d62728"
        ),
    }


class ValueController(Controller):
    """/analytics/value (marketers, analysts, admins): the page at once, the figures by htmx while they compute."""

    path = "/analytics/value"
    include_in_schema = False
    opt = {"permission": Permission.read_customers}

    @get("/")
    async def page(self, request: Request[Any, Any, Any]) -> Response[str]:
        return render(request, "value.html", tab="value")

    @get("/figures")
    async def figures(self, request: Request[Any, Any, Any]) -> Response[str]:
        platform: Platform = request.app.state.platform
        data = await asyncio.to_thread(cached_value_figures, platform)
        if data is None:  # still fitting: the progress note stays and asks again shortly
            message = gettext_for(request)("Reading the customer scores…")
            return render(request, "partials/figures_pending.html", url="/analytics/value/figures", message=message)
        context: dict[str, Any] = {"data": data}
        if not data["problem"] and data["customers"]:
            context |= charts_of(data, Formats(locale_of(request)), gettext_for(request))
        return render(request, "partials/value_figures.html", **context)
