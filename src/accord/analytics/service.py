"""Public functions of the analytics domain, for the faces (API, CLI) and for other domains (segments read scores)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from accord.analytics import customers as cust
from accord.analytics import holdouts, recommend, store
from accord.analytics.attribution import MODELS, Attribution, attribute
from accord.analytics.errors import AnalyticsError, InvalidInput, NotEnoughData
from accord.analytics.holdouts import HoldoutTest, broadcast_lift, lift_by_channel
from accord.analytics.lift import lift_from_table
from accord.analytics.paths import PathSet, column, paths_from_table, read_table
from accord.analytics.spend import check_rows, read_rows
from accord.analytics.tables import ad_spend, profile_scores
from accord.storage import new_id, utcnow
from accord.storage.events import EventStore

__all__ = [
    "MODELS",
    "AnalyticsError",
    "HoldoutTest",
    "InvalidInput",
    "NotEnoughData",
    "attribution_from_file",
    "attribution_from_store",
    "attribution_from_table",
    "broadcast_lift",
    "channel_scorecard",
    "clv_from_file",
    "clv_from_store",
    "clv_from_table",
    "cohorts_from_file",
    "cohorts_from_store",
    "evaluate_recommendations",
    "forecast_from_file",
    "forecast_from_store",
    "global_control_lift",
    "import_spend",
    "import_spend_file",
    "lift_from_file",
    "read_scores",
    "read_spend",
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
    return attribution_from_table(read_table(path), path_col, sep, conversions_col, nulls_col, value_col, model,
                                  **options)  # fmt: skip


def table_of_rows(rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    """Rows posted as JSON objects (one per file row) as a table, as if read from a file."""
    if not rows:
        raise InvalidInput("no rows")
    try:
        return pa.Table.from_pylist([dict(r) for r in rows])
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise InvalidInput(f"the rows do not form a table: {exc}") from exc


def attribution_from_table(
    table: pa.Table,
    path_col: str,
    sep: str = ">",
    conversions_col: str | None = None,
    nulls_col: str | None = None,
    value_col: str | None = None,
    model: str = "markov",
    **options: Any,
) -> dict[str, Any]:
    """attribution_from_file on a table already read (or posted as rows)."""
    paths = paths_from_table(table, path_col, sep, conversions_col, nulls_col, value_col)
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
    state: sa.Engine | None = None,
    window: timedelta = timedelta(days=30),
    conversion: str = store.DEFAULT_CONVERSION,
    start: datetime | None = None,
    end: datetime | None = None,
    model: str = "all",
    reference_model: str = "markov",
    holdout_tests: Callable[[datetime, datetime], Sequence[HoldoutTest]] | None = None,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Per channel: reach, touches, conversions in the channel and their revenue, attributed conversions and value
    per model, cost (messages delivered in the period, from messaging's delivery events, plus the ad spend imported
    for the days of the period when STATE is given), CPA and ROAS by the reference model, and the conversion lift
    against the channel's holdout tests (HOLDOUT_TESTS(start, end) lists them; conversions within WINDOW of each
    send, pooled per channel); and purchase rate by channels reached.
    """
    period = _period(events, window, start, end)
    built = store.build_paths(events, period, conversion)
    results = {r.model: r for r in run_models(built.paths, model)}
    if reference_model not in results:
        raise InvalidInput(f"the reference model {reference_model!r} is not among the models run")
    costs = _costs(events, state, period, built.currency)
    found = holdout_tests(period.start, period.end) if holdout_tests else []
    lifts, tests = lift_by_channel(events, found, window, conversion, confidence)
    reach = {e["channel"]: e for e in store.channel_reach(events, period, conversion, built.currency)}
    names = sorted({*reach, *costs["by_channel"], *lifts})
    rows = []
    for ch in names:
        entry = reach.get(ch, {"channel": ch, "reach": 0, "touches": 0, "conversions": 0, "revenue": 0})
        attributed = {}
        for name, res in results.items():
            try:
                credit = res.credit(ch)
                attributed[name] = {"conversions": credit.conversions, "value": credit.value}
            except KeyError:
                attributed[name] = {"conversions": 0.0, "value": 0.0}
        spent = costs["by_channel"].get(ch, {"messages": 0, "ads": 0})
        cost = spent["messages"] + spent["ads"] if ch in costs["by_channel"] else None
        ref = attributed[reference_model]
        rows.append(
            {
                **entry,
                "attributed": attributed,
                "cost": cost,
                "cost_messages": spent["messages"],
                "cost_ads": spent["ads"],
                "cpa": cost / ref["conversions"] if cost is not None and ref["conversions"] > 0 else None,
                "roas": ref["value"] / cost if cost else None,
                "lift": lifts.get(ch),
            }
        )
    return {
        **_store_meta(built, period, conversion),
        "reference_model": reference_model,
        "cost_currency": costs["currency"],
        "costs_in_other_currencies": costs["other"],
        "confidence": confidence,
        "channels": rows,
        "holdout_tests": tests,
        "purchase_rate_by_channels": store.purchase_rate_by_channels(events, period, conversion),
    }


def _costs(events: EventStore, state: sa.Engine | None, period: store.Period, currency: str | None) -> dict[str, Any]:
    """Message costs and ad spend per channel in one currency (the conversions' one, else the costs' most common);
    amounts in other currencies are listed apart, never converted or dropped."""
    items = [("messages", c["channel"], c["currency"], c["cost_minor"]) for c in store.message_costs(events, period)]
    if state is not None:
        first, last = period.start.date(), (period.end - timedelta(microseconds=1)).date()
        for row in read_spend(state, first, last):
            items.append(("ads", row["channel"], row["currency"], row["cost_minor"]))
    if currency is None and items:
        totals: dict[str, int] = {}
        for _, _, cur, amount in items:
            totals[cur] = totals.get(cur, 0) + amount
        currency = max(sorted(totals, key=str), key=lambda c: totals[c])
    by_channel: dict[str, dict[str, int]] = {}
    other: dict[tuple[str, str, str], int] = {}
    for source, channel, cur, amount in items:
        if cur == currency:
            slot = by_channel.setdefault(channel, {"messages": 0, "ads": 0})
            slot[source] += amount
        else:
            other[(channel, source, cur)] = other.get((channel, source, cur), 0) + amount
    return {
        "currency": currency,
        "by_channel": by_channel,
        "other": [{"channel": c, "source": s, "currency": cur, "cost_minor": v} for (c, s, cur), v in other.items()],
    }


def import_spend(state: sa.Engine, rows: Iterable[Mapping[str, Any]], source: str) -> dict[str, Any]:
    """Store ad spend rows (date, channel, cost or cost_minor, currency, campaign): every valid row in one
    transaction, replacing the amount stored for its day, channel and campaign, so a re-import changes nothing;
    invalid rows are not stored and come back with their row number (1 = first row after the header) and reason."""
    good, bad = check_rows(rows)
    now = utcnow()
    inserted = updated = unchanged = 0
    with state.begin() as conn:
        for row in good:
            key = (
                (ad_spend.c.day == row.day)
                & (ad_spend.c.channel == row.channel)
                & (ad_spend.c.campaign == row.campaign)
            )
            old = conn.execute(sa.select(ad_spend.c.currency, ad_spend.c.cost_minor).where(key)).first()
            values = {
                "currency": row.currency,
                "cost_minor": row.cost_minor,
                "source": source[:200],
                "imported_at": now,
            }
            if old is None:
                conn.execute(
                    ad_spend.insert().values(day=row.day, channel=row.channel, campaign=row.campaign, **values)
                )
                inserted += 1
            elif (old.currency, old.cost_minor) != (row.currency, row.cost_minor):
                conn.execute(ad_spend.update().where(key).values(**values))
                updated += 1
            else:
                unchanged += 1
    return {
        "rows": len(good) + len(bad),
        "imported": len(good),
        "inserted": inserted,
        "updated": updated,
        "unchanged": unchanged,
        "rejected": [r.as_dict() for r in bad],
    }


def import_spend_file(state: sa.Engine, path: Path) -> dict[str, Any]:
    """import_spend of a CSV or Parquet file."""
    return import_spend(state, read_rows(path), path.name)


def read_spend(state: sa.Engine, first: date | None = None, last: date | None = None) -> list[dict[str, Any]]:
    """Imported spend rows of the days FIRST..LAST (inclusive; default all), by day, channel and campaign."""
    query = sa.select(ad_spend).order_by(ad_spend.c.day, ad_spend.c.channel, ad_spend.c.campaign)
    if first is not None:
        query = query.where(ad_spend.c.day >= first)
    if last is not None:
        query = query.where(ad_spend.c.day <= last)
    with state.connect() as conn:
        return [
            {
                "day": r.day.isoformat(),
                "channel": r.channel,
                "campaign": r.campaign,
                "currency": r.currency,
                "cost_minor": int(r.cost_minor),
                "source": r.source,
            }
            for r in conn.execute(query)
        ]


def global_control_lift(
    events: EventStore,
    in_control: Callable[[str], bool],
    start: datetime | None = None,
    end: datetime | None = None,
    conversion: str = store.DEFAULT_CONVERSION,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Conversion and revenue of the profiles active in [start, end) (default: the last 30 days of events), everyone
    else against the global control group (IN_CONTROL, messaging's test)."""
    default = store.default_period(events, timedelta(days=30), days=30)
    return holdouts.global_control_lift(events, in_control, start or default.start, end or default.end, conversion,
                                        confidence)  # fmt: skip


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
    return clv_from_table(read_table(path), customer_col, date_col, value_col, calibration_end, time_unit,
                          horizon_days, discount_rate)  # fmt: skip


def clv_from_table(
    table: pa.Table,
    customer_col: str,
    date_col: str,
    value_col: str | None,
    calibration_end: str | None = None,
    time_unit: str = "week",
    horizon_days: float = 365.0,
    discount_rate: float = 0.0,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """clv_from_file on a table already read (or posted as rows)."""
    tx = cust.transactions_from_table(table, customer_col, date_col, value_col)
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
    events: EventStore,
    profile_id: str | None,
    k: int = 10,
    available: Sequence[str] | None = None,
    where_in_stock: Callable[[str], dict[str, Any] | None] | None = None,
) -> dict[str, Any]:
    """Top-K products for a profile from everyone's views, cart additions and purchases (ALS; popular products for
    a profile without history), restricted to AVAILABLE products when given. WHERE_IN_STOCK(sku), supplied by the
    caller from the commerce domain, names the nearest location holding a product (None: not in stock nearby);
    candidates are then checked in rank order until K are in stock, each with its location as "in_stock_at"."""
    users, items, weights, _times, _bought = _interaction_lists(events)
    model = recommend.fit(recommend.interactions(users, items, weights))
    if where_in_stock is None:
        recs = model.recommend(profile_id, k, available)
    else:
        recs = []
        for rec in model.recommend(profile_id, max(10 * k, 50), available):
            if (location := where_in_stock(rec["item"])) is not None:
                recs.append({**rec, "in_stock_at": location})
                if len(recs) == k:
                    break
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
