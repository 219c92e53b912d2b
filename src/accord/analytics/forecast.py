"""Demand forecasts per store and SKU (statsforecast): weekly sales, hold-out accuracy, safety stock."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from accord.analytics.errors import InvalidInput, NotEnoughData
from accord.analytics.paths import FloatArray

MODELS = ("CrostonOptimized", "ADIDA", "IMAPA", "SeasonalNaive", "Naive")
CANDIDATES = MODELS[:3]  # intermittent-demand models; the naive ones are baselines for the accuracy table


def accuracy(actual: FloatArray, predicted: FloatArray) -> dict[str, float]:
    """MAE, RMSE and WAPE (sum of absolute errors / sum of actual sales) over all series and weeks."""
    err = predicted - actual
    total = float(np.abs(actual).sum())
    return {
        "mae": float(np.abs(err).mean()),
        "rmse": float(np.sqrt((err**2).mean())),
        "wape": float(np.abs(err).sum() / total) if total else math.nan,
    }


def _week(day: date) -> date:
    return day - timedelta(days=day.weekday())  # the Monday of its week


def weekly_sales(stores: Sequence[str], skus: Sequence[str], days: Sequence[date], quantities: Sequence[float]) -> Any:
    """A pandas frame unique_id ("store|sku"), ds (Monday of the week), y (units), every week from the series' first
    sale to the last week of the data filled (weeks without sales are 0: demand is intermittent)."""
    import pandas as pd

    if not len(stores) == len(skus) == len(days) == len(quantities):
        raise InvalidInput("stores, SKUs, days and quantities need one entry per sale")
    if not stores:
        raise NotEnoughData("there are no sales")
    frame = pd.DataFrame(
        {
            "unique_id": [f"{s}|{k}" for s, k in zip(stores, skus, strict=True)],
            "ds": pd.to_datetime([_week(d) for d in days]),
            "y": np.asarray(quantities, dtype=np.float64),
        }
    )
    sums = frame.groupby(["unique_id", "ds"], as_index=False)["y"].sum()
    last = sums["ds"].max()
    first = sums.groupby("unique_id")["ds"].min()
    weeks = pd.date_range(first.min(), last, freq="7D")
    full = pd.MultiIndex.from_product([first.index, weeks], names=["unique_id", "ds"]).to_frame(index=False)
    full = full[full["ds"] >= full["unique_id"].map(first)]
    out = full.merge(sums, on=["unique_id", "ds"], how="left").fillna({"y": 0.0})
    return out.sort_values(["unique_id", "ds"]).reset_index(drop=True)


def _models(season: int) -> list[Any]:
    from statsforecast.models import ADIDA, IMAPA, CrostonOptimized, Naive, SeasonalNaive

    return [CrostonOptimized(), ADIDA(), IMAPA(), SeasonalNaive(season_length=season), Naive()]


def forecast(
    sales: Any,
    horizon: int = 4,
    lead_time_weeks: float = 1.0,
    service_level: float = 0.95,
    season: int = 52,
) -> dict[str, Any]:
    """Fit every model on all but the last HORIZON weeks and score them on those weeks; pick the best
    intermittent-demand model (Croston, ADIDA, IMAPA) by WAPE, refit it on everything and forecast HORIZON weeks.
    Safety stock per series: z(service level) x the series' hold-out RMSE of the chosen model x sqrt(lead time in
    weeks)."""
    from statsforecast import StatsForecast

    if horizon < 1:
        raise InvalidInput("the horizon must be at least one week")
    if not 0.5 <= service_level < 1:
        raise InvalidInput("the service level must be in [0.5, 1)")
    weeks = sales["ds"].nunique()
    if weeks < horizon + 3:
        raise NotEnoughData(f"{weeks} weeks of sales: need at least {horizon + 3} for a hold-out of {horizon}")
    cutoff = sorted(sales["ds"].unique())[-horizon]
    train = sales[sales["ds"] < cutoff]
    test = sales[sales["ds"] >= cutoff]
    train = train[train.groupby("unique_id")["y"].transform("size") >= 2]
    season = min(season, max(1, int(train.groupby("unique_id")["y"].size().min())))
    engine = StatsForecast(models=_models(season), freq="7D", n_jobs=1)
    held: pd.DataFrame = engine.forecast(df=train, h=horizon)  # pandas in, pandas out (polars is not used here)
    held = held.reset_index() if "unique_id" not in held.columns else held
    joined = test.merge(held, on=["unique_id", "ds"], how="inner")
    if joined.empty:
        raise NotEnoughData("no series has sales both before and during the hold-out weeks")
    names = [m for m in MODELS if m in joined.columns]
    scores = {m: accuracy(joined["y"].to_numpy(), joined[m].to_numpy()) for m in names}
    best = min((m for m in names if m in CANDIDATES), key=lambda m: (scores[m]["wape"], m))
    rmse = joined.assign(err=(joined[best] - joined["y"]) ** 2).groupby("unique_id")["err"].mean() ** 0.5
    z = float(stats.norm.ppf(service_level))
    final = StatsForecast(models=[_models(season)[MODELS.index(best)]], freq="7D", n_jobs=1)
    future: pd.DataFrame = final.forecast(df=sales[sales.groupby("unique_id")["y"].transform("size") >= 2], h=horizon)
    future = future.reset_index() if "unique_id" not in future.columns else future
    rows = []
    for uid, group in future.groupby("unique_id", sort=True):
        store, _, sku = str(uid).partition("|")
        values = np.maximum(group[best].to_numpy(), 0.0)
        sigma = float(rmse.get(uid, np.nan))
        rows.append(
            {
                "store": store,
                "sku": sku,
                "weeks": [
                    {"week": d.date().isoformat(), "units": float(v)} for d, v in zip(group["ds"], values, strict=True)
                ],
                "total_units": float(values.sum()),
                "safety_stock": None if math.isnan(sigma) else z * sigma * math.sqrt(lead_time_weeks),
            }
        )
    return {
        "series": len(rows),
        "horizon_weeks": horizon,
        "holdout_start": cutoff.date().isoformat() if hasattr(cutoff, "date") else str(cutoff),
        "model": best,
        "accuracy": scores,
        "service_level": service_level,
        "lead_time_weeks": lead_time_weeks,
        "forecasts": rows,
    }
