"""Recommendations: ALS finds taste groups that popularity cannot, new customers get popular items, metrics by hand."""

from __future__ import annotations

import json
import random

import pyarrow as pa
import pytest

from accord.analytics import service
from accord.analytics.errors import InvalidInput
from accord.analytics.recommend import evaluate, fit, interactions, precision_recall_at_k
from accord.storage.events import EventStore

from .conftest import event_rows


def test_precision_and_recall_by_hand() -> None:
    got = precision_recall_at_k([["a", "b", "c"], ["x", "y", "z"]], [{"a", "q"}, {"y", "z"}], k=3)
    # user 1: 1 hit of 3 recommended, 1 of 2 relevant; user 2: 2 hits, 2 of 2
    assert got["precision_at_k"] == pytest.approx((1 / 3 + 2 / 3) / 2)
    assert got["recall_at_k"] == pytest.approx((1 / 2 + 1) / 2)


def _two_tastes(n_users: int = 120, seed: int = 1) -> tuple[list[str], list[str], list[float], list[float], list[bool]]:
    """Half the customers buy from 8 garden items, half from 12 kitchen items (so garden items are more popular)."""
    rng = random.Random(seed)
    garden = [f"garden-{i}" for i in range(8)]
    kitchen = [f"kitchen-{i}" for i in range(12)]
    users, items, weights, times, bought = [], [], [], [], []
    for u in range(n_users):
        pool = garden if u % 2 else kitchen
        picks = rng.sample(pool, 5)
        for t, item in enumerate(picks):
            users.append(f"u{u}")
            items.append(item)
            weights.append(4.0)
            times.append(float(t))
            bought.append(True)
    return users, items, weights, times, bought


def test_als_beats_popularity_on_held_out_last_purchases() -> None:
    users, items, weights, times, bought = _two_tastes()
    result = evaluate(users, items, weights, times, bought, k=3)
    assert result["method"] == "als" and result["held_out_users"] == 120
    assert result["model"]["recall_at_k"] > result["popularity"]["recall_at_k"] + 0.15


def test_recommendations_stay_in_taste_and_in_stock() -> None:
    users, items, weights, _t, _b = _two_tastes()
    model = fit(interactions(users, items, weights))
    gardener = model.recommend("u1", k=3)
    assert all(r["item"].startswith("garden") for r in gardener)
    assert {r["source"] for r in gardener} == {"als"}
    seen = {i for u, i in zip(users, items, strict=True) if u == "u1"}
    assert not seen & {r["item"] for r in gardener}
    in_stock = ["garden-0", "kitchen-0"]
    assert {r["item"] for r in model.recommend("u1", k=5, available=in_stock)} <= set(in_stock)
    newcomer = model.recommend("someone-new", k=2)
    assert [r["source"] for r in newcomer] == ["popularity", "popularity"]
    assert newcomer[0]["item"].startswith("garden")  # the most bought items
    with pytest.raises(InvalidInput):
        model.recommend("u1", k=0)


def test_recommendations_from_the_event_store(events: EventStore) -> None:
    rows = []
    for u in range(30):
        viewed = (["A"] if u == 1 else ["A", "C"]) if u % 2 else ["X", "Z"]
        for d, _sku in enumerate(viewed):
            rows.append((f"c{u}@P{u}", d, "web", "Product Viewed", None, None))
    table = event_rows(rows)
    skus = [sku for u in range(30) for sku in ((["A"] if u == 1 else ["A", "C"]) if u % 2 else ["X", "Z"])]
    raw = [json.dumps({"properties": {"sku": sku}}) for sku in skus]
    table = table.set_column(table.schema.get_field_index("raw"), "raw", pa.array(raw, pa.string()))
    events.load(table, 1, [])
    table = event_rows([(f"c{u}@P{u}", 5, "store", "Order Completed", 1000, "PLN") for u in range(30)])
    raw = [json.dumps({"properties": {"products": [{"sku": "A" if u % 2 else "X"}, {"sku": "B" if u % 2 else "Y"}]}})
           for u in range(30)]  # fmt: skip
    table = table.set_column(table.schema.get_field_index("raw"), "raw", pa.array(raw, pa.string()))
    table = table.set_column(0, "event_id", pa.array([f"o{u}" for u in range(30)], pa.string()))
    events.load(table, 2, [])
    doc = service.recommendations_from_store(events, "P1", k=2)
    # P1 viewed A and bought A and B: C is the one item of its taste it has not met
    assert doc["method"] == "als" and doc["items"][0]["item"] == "C"
    fresh = service.recommendations_from_store(events, "nobody", k=1)
    assert fresh["method"] == "popularity"
