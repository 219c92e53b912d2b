"""Demand forecasts: accuracy metrics by hand, a steady series forecast at its level, safety stock from the hold-out."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest

from accord.analytics import service
from accord.analytics.errors import NotEnoughData
from accord.analytics.forecast import accuracy, forecast, weekly_sales


def test_accuracy_by_hand() -> None:
    got = accuracy(np.array([2.0, 0.0, 4.0]), np.array([1.0, 1.0, 4.0]))
    assert got == pytest.approx({"mae": 2 / 3, "rmse": (2 / 3) ** 0.5, "wape": 2 / 6})


def test_weekly_sales_fill_weeks_without_sales() -> None:
    monday = date(2026, 1, 5)
    days = [monday, monday + timedelta(days=2), monday + timedelta(days=14)]
    frame = weekly_sales(["s1", "s1", "s1"], ["A", "A", "A"], days, [1, 2, 5])
    assert frame["y"].tolist() == [3.0, 0.0, 5.0]


def test_steady_and_intermittent_series(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rows = ["store,sku,day,units"]
    start = date(2026, 1, 5)
    for week in range(30):
        day = start + timedelta(days=7 * week + 2)
        rows.append(f"krakow,STEADY,{day.isoformat()},6")
        if rng.random() < 0.3:
            rows.append(f"london,RARE,{day.isoformat()},{int(rng.integers(1, 4))}")
    f = tmp_path / "sales.csv"
    f.write_text("\n".join(rows) + "\n")
    doc = service.forecast_from_file(f, "store", "sku", "day", "units", horizon=4)
    assert doc["series"] == 2 and doc["horizon_weeks"] == 4
    assert set(doc["accuracy"]) >= {"CrostonOptimized", "ADIDA", "Naive"}
    steady = next(r for r in doc["forecasts"] if r["sku"] == "STEADY")
    assert [w["units"] for w in steady["weeks"]] == pytest.approx([6.0] * 4, abs=0.5)
    assert steady["safety_stock"] == pytest.approx(0.0, abs=0.5)  # no error on a steady series
    rare = next(r for r in doc["forecasts"] if r["sku"] == "RARE")
    assert 0 < rare["total_units"] < 12 and rare["safety_stock"] > 0
    with pytest.raises(NotEnoughData):
        forecast(weekly_sales(["s"], ["A"], [start], [1.0]))
