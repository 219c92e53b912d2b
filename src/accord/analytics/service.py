"""Public functions of the analytics domain, for the faces (API, CLI) and for other domains (segments read scores)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from accord.analytics import customers as cust
from accord.analytics import recommend, store
from accord.analytics.attribution import MODELS, Attribution, attribute
from accord.analytics.errors import AnalyticsError, InvalidInput, NotEnoughData
from accord.analytics.lift import lift_from_table
from accord.analytics.paths import PathSet, column, numeric_column, paths_from_file, read_table
from accord.analytics.tables import profile_scores
from accord.storage import new_id, utcnow
from accord.storage.events import EventStore

__all__ = [
    "MODELS",
    "AnalyticsError",
    "InvalidInput",
    "NotEnoughData",
    "attribution_from_file",
    "attribution_from_store",
    "channel_scorecard",
    "clv_from_file",
    "clv_from_store",
    "cohorts_from_file",
    "cohorts_from_store",
    "evaluate_recommendations",
    "forecast_from_file",
    "forecast_from_store",
    "lift_from_file",
    "read_scores",
    "recommendations_from_store",
    "rfm_from_store",
    "write_scores",
]


def _models(model: str) -> list[str]:
    if model == "all":
        return list(MODELS)
    names = [m.strip() for m in model.split(",") if m.strip()]
    for name in names:
        if name not in MODELS:
            raise InvalidInput(f"unknown model {name!r}; use one of {', '.join(MODELS)} or all")
    if not names:
        raise InvalidInput("name a model")
    return names


def run_models(paths: PathSet, model: str = "all", **options: Any) -> list[Attribution]:
    """Run the named model(s) (comma-separated, or all) over PATHS."""
    return [attribute(paths, name, **options) for name in _models(model)]


def _attribution_doc(results: list[Attribution], model: str, meta: dict[str, Any]) -> dict[str, Any]:
    if len(results) == 1 and model != "all":
        return results[0].as_dict()
    return {"models": [r.as_dict() for r in results], **meta}


def attribution_from_file(
    path: Path,
    path_col: str,
    sep: str = ">",
    conversions_col: str | None = None,
    nulls_col: str | None = None,
    value_col: str | None = None,
    model: str = "markov",
    **options: Any,
) -> dict[str, Any]:
    """Attribution over the paths of a CSV/Parquet file: one model's document, or {"models": [...]} for several."""
    paths = paths_from_file(path, path_col, sep, conversions_col, nulls_col, value_col)
    results = run_models(paths, model, **options)
    return _attribution_doc(results, model, {"paths": paths.n_paths, "channels": len(paths.channels)})


def attribution_from_store(
    events: EventStore,
    model: str = "all",
    window: timedelta = timedelta(days=30),
    conversion: str = store.DEFAULT_CONVERSION,
    start: datetime | None = None,
    end: datetime | None = None,
    currency: str | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Attribution of the conversions in [start, end) (default: all) over paths across channels and identities."""
    period = _period(events, window, start, end)
    built = store.build_paths(events, period, conversion, currency)
    results = run_models(built.paths, model, **options)
    meta = _store_meta(built, period, conversion)
    doc = _attribution_doc(results, model, meta)
    return doc


def _store_meta(built: store.StorePaths, period: store.Period, conversion: str) -> dict[str, Any]:
    return {
        "conversion": conversion,
        "start": period.start.isoformat(),
        "end": period.end.isoformat(),
        "window_days": period.window.total_seconds() / 86400,
        "paths": built.paths.n_paths,
        "converting_profiles": built.profiles,
        "currency": built.currency,
        "value_unit": "minor",
        "conversions_in_other_currencies": built.conversions_other_currency,
    }


def _period(events: EventStore, window: timedelta, start: datetime | None, end: datetime | None) -> store.Period:
    default = store.default_period(events, window)
    return store.Period(start or default.start, end or default.end, window)


def channel_scorecard(
    events: EventStore,
    window: timedelta = timedelta(days=30),
    conversion: str = store.DEFAULT_CONVERSION,
    start: datetime | None = None,
    end: datetime | None = None,
    costs: dict[str, float] | None = None,
    model: str = "all",
    reference_model: str = "markov",
) -> dict[str, Any]:
    """Per channel: reach, touches, conversions in the channel, attributed conversions and value per model, cost
    (minor units, when given), CPA and ROAS by the reference model; and purchase rate by channels reached (story 20).
    """
    period = _period(events, window, start, end)
    built = store.build_paths(events, period, conversion)
    results = {r.model: r for r in run_models(built.paths, model)}
    if reference_model not in results:
        raise InvalidInput(f"the reference model {reference_model!r} is not among the models run")
    rows = []
    for entry in store.channel_reach(events, period, conversion):
        ch = entry["channel"]
        attributed = {}
        for name, res in results.items():
            try:
                credit = res.credit(ch)
                attributed[name] = {"conversions": credit.conversions, "value": credit.value}
            except KeyError:
                attributed[name] = {"conversions": 0.0, "value": 0.0}
        cost = (costs or {}).get(ch)
        ref = attributed[reference_model]
        rows.append(
            {
                **entry,
                "attributed": attributed,
                "cost": cost,
                "cpa": cost / ref["conversions"] if cost is not None and ref["conversions"] > 0 else None,
                "roas": ref["value"] / cost if cost else None,
            }
        )
    return {
        **_store_meta(built, period, conversion),
        "reference_model": reference_model,
        "channels": rows,
        "purchase_rate_by_channels": store.purchase_rate_by_channels(events, period, conversion),
    }


def read_costs(path: Path, channel_col: str = "channel", cost_col: str = "cost") -> dict[str, float]:
    """Spend per channel (summed over rows, e.g. days) from a CSV/Parquet file, in minor units."""
    table = read_table(path)
    channels = column(table, channel_col).to_pylist()
    costs = numeric_column(table, cost_col)
    out: dict[str, float] = {}
    for ch, c in zip(channels, costs, strict=True):
        out[str(ch)] = out.get(str(ch), 0.0) + float(c)
    return out


def lift_from_file(
    path: Path, group_col: str, control: str, metrics: Sequence[str], confidence: float = 0.95
) -> dict[str, Any]:
    """Lift of every group against CONTROL for each metric column of a CSV/Parquet file."""
    return lift_from_table(read_table(path), group_col, control, list(metrics), confidence)


def clv_from_file(
    path: Path,
    customer_col: str,
    date_col: str,
    value_col: str | None,
    calibration_end: str | None = None,
    time_unit: str = "week",
    horizon_days: float = 365.0,
    discount_rate: float = 0.0,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """BG/NBD + Gamma-Gamma on a transactions file: the summary document and one score row per customer."""
    tx = cust.transactions_from_table(read_table(path), customer_col, date_col, value_col)
    end = cust.parse_date(calibration_end) if calibration_end else None
    return cust.clv_report(tx, end, time_unit, horizon_days, discount_rate)


def clv_from_store(
    events: EventStore,
    state: sa.Engine | None = None,
    conversion: str = store.DEFAULT_CONVERSION,
    currency: str | None = None,
    time_unit: str = "week",
    horizon_days: float = 365.0,
    discount_rate: float = 0.0,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Fit the customer models on every profile's purchases; with STATE, write the scores back (write_scores)."""
    tx = store.purchases(events, conversion, currency)
    summary, rows = cust.clv_report(tx, None, time_unit, horizon_days, discount_rate)
    rfm = {r["customer"]: r for r in cust.rfm_scores(tx)}
    for row in rows:
        if (r := rfm.get(row["customer"])) is not None:
            row.update({"rfm_r": r["r"], "rfm_f": r["f"], "rfm_m": r["m"], "rfm_segment": r["segment"]})
    summary["currency"] = currency or _main_currency(events, conversion)
    summary["value_unit"] = "minor"
    if state is not None:
        summary["run_id"] = write_scores(
            state,
            [
                {
                    "profile_id": row["customer"],
                    "p_alive": row["p_alive"],
                    "churn_risk": row["churn_risk"],
                    "expected_purchases": row["expected_purchases"],
                    "horizon_days": int(horizon_days),
                    "clv_minor": round(row["clv"]),
                    "currency": summary["currency"],
                    "expected_next_purchase": date.fromisoformat(row["expected_next_purchase"]),
                    "rfm_r": row.get("rfm_r"),
                    "rfm_f": row.get("rfm_f"),
                    "rfm_m": row.get("rfm_m"),
                    "rfm_segment": row.get("rfm_segment"),
                }
                for row in rows
            ],
        )
    return summary, rows


def _main_currency(events: EventStore, conversion: str) -> str | None:
    rows = events.query(
        "SELECT currency, count(*) AS n FROM events WHERE type = 'track' AND event = ? AND currency IS NOT NULL "
        "GROUP BY currency ORDER BY n DESC LIMIT 1",
        [conversion],
    )
    return str(rows[0][0]) if rows else None


def rfm_from_store(events: EventStore, conversion: str = store.DEFAULT_CONVERSION) -> list[dict[str, Any]]:
    """RFM scores and segment names per profile from its purchases."""
    return cust.rfm_scores(store.purchases(events, conversion))


def cohorts_from_store(
    events: EventStore, by: str = "month", periods: int = 12, conversion: str = store.DEFAULT_CONVERSION
) -> list[dict[str, Any]]:
    """Retention by first-purchase month or first purchase channel."""
    return cust.cohorts(store.purchases(events, conversion), by, periods)


def cohorts_from_file(
    path: Path, customer_col: str, date_col: str, by: str = "month", periods: int = 12
) -> list[dict[str, Any]]:
    """Retention by first-purchase month from a transactions file."""
    return cust.cohorts(cust.transactions_from_table(read_table(path), customer_col, date_col, None), by, periods)


def _interaction_lists(events: EventStore) -> tuple[list[str], list[str], list[float], list[float], list[bool]]:
    rows = store.product_interactions(events)
    if not rows:
        raise NotEnoughData("no product views, cart additions or orders with products in the event store")
    users = [r[0] for r in rows]
    items = [r[2] for r in rows]
    weights = [recommend.EVENT_WEIGHTS.get(r[1], 1.0) for r in rows]
    times = [r[3] for r in rows]
    bought = [r[1] == "Order Completed" for r in rows]
    return users, items, weights, times, bought


def recommendations_from_store(
    events: EventStore, profile_id: str | None, k: int = 10, available: Sequence[str] | None = None
) -> dict[str, Any]:
    """Top-K products for a profile from everyone's views, cart additions and purchases (ALS; popular products for
    a profile without history), restricted to AVAILABLE products (e.g. in stock near the customer) when given."""
    users, items, weights, _times, _bought = _interaction_lists(events)
    model = recommend.fit(recommend.interactions(users, items, weights))
    recs = model.recommend(profile_id, k, available)
    return {"profile_id": profile_id, "k": k, "method": recs[0]["source"] if recs else None, "items": recs}


def evaluate_recommendations(events: EventStore, k: int = 10) -> dict[str, Any]:
    """Precision@k and recall@k of ALS and of popularity against each customer's held-out last purchase."""
    users, items, weights, times, bought = _interaction_lists(events)
    return recommend.evaluate(users, items, weights, times, bought, k)


def forecast_from_store(
    events: EventStore,
    horizon: int = 4,
    lead_time_weeks: float = 1.0,
    service_level: float = 0.95,
    conversion: str = store.DEFAULT_CONVERSION,
) -> dict[str, Any]:
    """Weekly demand forecast per store and SKU from the order lines of every channel, with hold-out accuracy and
    safety stock (see accord.analytics.forecast.forecast)."""
    from accord.analytics import forecast as fc

    lines = store.sales_lines(events, conversion)
    if not lines:
        raise NotEnoughData(f"no {conversion!r} events with products in the event store")
    sales = fc.weekly_sales([x[0] for x in lines], [x[1] for x in lines], [x[2].date() for x in lines],
                            [x[3] for x in lines])  # fmt: skip
    return fc.forecast(sales, horizon, lead_time_weeks, service_level)


def forecast_from_file(
    path: Path,
    store_col: str,
    sku_col: str,
    date_col: str,
    quantity_col: str,
    horizon: int = 4,
    lead_time_weeks: float = 1.0,
    service_level: float = 0.95,
) -> dict[str, Any]:
    """The same forecast on a sales file (one row per sale or per day: store, SKU, date, units)."""
    from accord.analytics import forecast as fc

    table = read_table(path)
    stores = [str(x) for x in column(table, store_col).to_pylist()]
    skus = [str(x) for x in column(table, sku_col).to_pylist()]
    tx = cust.transactions_from_table(table, sku_col, date_col, quantity_col)
    days = [cust.day_to_date(d) for d in tx.day]
    sales = fc.weekly_sales(stores, skus, days, list(tx.value))
    return fc.forecast(sales, horizon, lead_time_weeks, service_level)


# ---- computed traits: the write path and the read path other domains use ------------------------------------

SCORE_FIELDS = (
    "p_alive",
    "churn_risk",
    "expected_purchases",
    "horizon_days",
    "clv_minor",
    "currency",
    "expected_next_purchase",
    "rfm_r",
    "rfm_f",
    "rfm_m",
    "rfm_segment",
)


def write_scores(state: sa.Engine, rows: Iterable[dict[str, Any]], replace_all: bool = True) -> str:
    """Store computed customer scores (one dict per profile: profile_id and SCORE_FIELDS) in one transaction.

    With REPLACE_ALL the previous run's scores are dropped first, so profiles no longer scored do not keep stale
    values. Returns the run id.
    """
    run_id = new_id()
    now = utcnow()
    batch = []
    for row in rows:
        if not row.get("profile_id"):
            raise InvalidInput("every score row needs a profile_id")
        unknown = set(row) - {"profile_id", *SCORE_FIELDS}
        if unknown:
            raise InvalidInput(f"unknown score fields: {', '.join(sorted(unknown))}")
        batch.append({**dict.fromkeys(SCORE_FIELDS), **row, "run_id": run_id, "computed_at": now})
    with state.begin() as conn:
        if replace_all:
            conn.execute(profile_scores.delete())
        else:
            ids = [r["profile_id"] for r in batch]
            for i in range(0, len(ids), 500):
                conn.execute(profile_scores.delete().where(profile_scores.c.profile_id.in_(ids[i : i + 500])))
        for i in range(0, len(batch), 2000):
            conn.execute(profile_scores.insert(), batch[i : i + 2000])
    return run_id


def read_scores(state: sa.Engine, profile_ids: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    """Computed scores by profile id (all profiles when PROFILE_IDS is None)."""
    query = sa.select(profile_scores)
    out: dict[str, dict[str, Any]] = {}
    with state.connect() as conn:
        chunks: list[Sequence[str] | None] = (
            [None] if profile_ids is None else [profile_ids[i : i + 500] for i in range(0, len(profile_ids), 500)]
        )
        for chunk in chunks:
            q = query if chunk is None else query.where(profile_scores.c.profile_id.in_(chunk))
            for row in conn.execute(q).mappings():
                out[row["profile_id"]] = dict(row)
    return out
