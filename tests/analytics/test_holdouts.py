"""Scorecard cost (message costs + ad spend), CPA, ROAS and holdout lift; broadcast and global-control lift —
each against a computation written out here."""

from __future__ import annotations

import json
import math
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats

from accord.analytics import service
from accord.analytics.errors import NotEnoughData
from accord.analytics.holdouts import HoldoutTest
from accord.analytics.lift import stratified_lift
from accord.storage import create_state_engine, migrate
from accord.storage.events import EventStore

from .conftest import T0, event_rows

OC = "Order Completed"
Z95 = 1.959963984540054


def with_raw(rows: list[tuple[Any, ...]], raws: dict[int, dict[str, Any]]) -> pa.Table:
    """event_rows with the raw JSON of some rows (by index) set."""
    table = event_rows(rows)
    raw = [json.dumps(raws[i]) if i in raws else "{}" for i in range(len(rows))]
    return table.set_column(table.column_names.index("raw"), "raw", pa.array(raw, pa.string()))


def delivered(cost: int, currency: str, n: int) -> dict[str, Any]:
    return {"properties": {"delivery_id": f"d{n}", "cost_minor": cost, "currency": currency}}


def mh(strata: list[tuple[int, int, int, int]]) -> tuple[float, float]:
    """Mantel-Haenszel risk difference and its standard error, written out."""
    num = den = var = 0.0
    for nt, xt, nc, xc in strata:
        w = nt * nc / (nt + nc)
        pt, pc = xt / nt, xc / nc
        num += w * (pt - pc)
        den += w
        var += w * w * (pt * (1 - pt) / nt + pc * (1 - pc) / nc)
    return num / den, math.sqrt(var) / den


def test_stratified_lift_is_two_proportion_for_one_test_and_mantel_haenszel_for_several() -> None:
    one = stratified_lift([(200, 30, 100, 8)])
    assert one is not None
    p1, p0 = 30 / 200, 8 / 100
    pooled = 38 / 300
    assert one["lift_abs"] == pytest.approx(p1 - p0)
    assert one["statistic"] == pytest.approx((p1 - p0) / math.sqrt(pooled * (1 - pooled) * (1 / 200 + 1 / 100)))
    se = math.sqrt(p1 * (1 - p1) / 200 + p0 * (1 - p0) / 100)
    assert (one["ci_low"], one["ci_high"]) == pytest.approx((p1 - p0 - Z95 * se, p1 - p0 + Z95 * se))
    strata = [(200, 30, 100, 8), (50, 20, 400, 100), (10, 0, 0, 0)]  # the last has no holdout: left out
    both = stratified_lift(strata)
    assert both is not None and both["tests"] == 2 and both["test"] == "mantel_haenszel"
    diff, se = mh(strata[:2])
    assert both["lift_abs"] == pytest.approx(diff)
    assert (both["ci_low"], both["ci_high"]) == pytest.approx((diff - Z95 * se, diff + Z95 * se))
    assert both["p_value"] == pytest.approx(2 * stats.norm.sf(abs(diff / se)))
    assert (both["n"], both["control_n"]) == (250, 500)
    # pooling the raw counts would mislead (Simpson): the stratified estimate differs from the pooled one
    assert both["lift_abs"] != pytest.approx(50 / 250 - 108 / 500)
    assert stratified_lift([(0, 0, 5, 1)]) is None


def _scorecard_events() -> pa.Table:
    rows: list[tuple[Any, ...]] = []
    raws: dict[int, dict[str, Any]] = {}

    def add(row: tuple[Any, ...], raw: dict[str, Any] | None = None) -> None:
        if raw is not None:
            raws[len(rows)] = raw
        rows.append(row)

    # broadcast 1 on email: 10 treated (4 buy), 5 held out (1 buys); broadcast 2: 8 treated (6 buy), 4 held out (2)
    for i in range(10, 20):
        add((f"c{i}@P{i}", 1, "email", "Message Delivered", None, None), delivered(3, "PLN", i))
        if i < 14:
            add((f"c{i}@P{i}", 2, "web", OC, 1_000, "PLN"))
    for i in range(20, 25):
        add((f"c{i}@P{i}", 1, "web", None, None, None))
        if i == 20:
            add((f"c{i}@P{i}", 2, "web", OC, 1_000, "PLN"))
    for i in range(30, 38):
        add((f"c{i}@P{i}", 1, "email", "Message Delivered", None, None), delivered(3, "PLN", i))
        if i < 36:
            add((f"c{i}@P{i}", 2, "store", OC, 2_000, "PLN"))
    for i in range(40, 44):
        add((f"c{i}@P{i}", 1, "web", None, None, None))
        if i < 42:
            add((f"c{i}@P{i}", 2, "store", OC, 2_000, "PLN"))
    add(("c50@P50", 1.5, "sms", "Message Delivered", None, None), delivered(7, "PLN", 50))
    add(("c51@P51", 1.5, "sms", "Message Clicked", None, None), delivered(7, "PLN", 51))  # a click proves delivery
    add(("c51@P51", 1.6, "sms", "Message Clicked", None, None))  # a second click carries no cost
    add(("c52@P52", 1.5, "push", "Message Delivered", None, None), delivered(2, "EUR", 52))  # another currency
    add(("c53@P53", 12, "email", "Message Delivered", None, None), delivered(3, "PLN", 53))  # after the period
    return with_raw(rows, raws)


def _tests(start: Any, end: Any) -> list[HoldoutTest]:
    since = T0 + timedelta(days=0.5)
    return [
        HoldoutTest("broadcast", "b1", "email", since,
                    {"holdout": [f"P{i}" for i in range(20, 25)], "A": [f"P{i}" for i in range(10, 20)]}),
        HoldoutTest("broadcast", "b2", "email", since,
                    {"holdout": [f"P{i}" for i in range(40, 44)], "broadcast": [f"P{i}" for i in range(30, 38)]}),
        HoldoutTest("broadcast", "b3", None, since, {"holdout": ["P20"], "broadcast": ["P10"]}),
        HoldoutTest("journey", "j1", "sms", counts=(100, 20, 50, 5)),
    ]  # fmt: skip


def test_counts_of_many_reads_once_what_counts_of_reads_per_test(events: EventStore) -> None:
    from accord.analytics.holdouts import counts_of, counts_of_many

    events.load(_scorecard_events(), 1, [])
    tests = _tests(None, None)
    later = HoldoutTest("broadcast", "late", "sms", T0 + timedelta(days=3), {"holdout": ["P20"], "broadcast": ["P10"]})
    tests += [later, HoldoutTest("broadcast", "no holdout", "sms", T0, {"broadcast": ["P10"]})]
    for window in (timedelta(hours=12), timedelta(days=2), timedelta(days=30)):
        one_by_one = [counts_of(events, t, window, OC) for t in tests]
        assert counts_of_many(events, tests, window, OC) == one_by_one
        assert one_by_one[-1] is None and one_by_one[3] == (100, 20, 50, 5)
    assert counts_of_many(events, [], timedelta(days=1), OC) == []


def test_scorecard_cost_cpa_roas_and_lift(events: EventStore, tmp_path: Path) -> None:
    events.load(_scorecard_events(), 1, [])
    state = create_state_engine(f"sqlite:///{tmp_path / 'state.db'}")
    migrate(state)
    spend = [
        {"date": "2026-03-01", "channel": "ads", "campaign": "a", "cost": "120.50", "currency": "PLN"},
        {"date": "2026-03-05", "channel": "ads", "campaign": "b", "cost": "9.50", "currency": "PLN"},
        {"date": "2026-02-28", "channel": "ads", "cost": "1000", "currency": "PLN"},  # before the period
        {"date": "2026-03-20", "channel": "ads", "cost": "1000", "currency": "PLN"},  # after it
        {"date": "2026-03-02", "channel": "email", "cost": "1.00", "currency": "PLN"},
        {"date": "2026-03-02", "channel": "ads", "campaign": "c", "cost": "5", "currency": "USD"},
    ]
    assert service.import_spend(state, spend, "test")["rejected"] == []
    doc = service.channel_scorecard(
        events, state, timedelta(days=30), start=T0, end=T0 + timedelta(days=10), model="markov,last",
        holdout_tests=_tests,
    )  # fmt: skip
    rows = {r["channel"]: r for r in doc["channels"]}
    assert doc["cost_currency"] == "PLN" == doc["currency"]
    assert (rows["email"]["cost_messages"], rows["email"]["cost_ads"], rows["email"]["cost"]) == (18 * 3, 100, 154)
    assert (rows["sms"]["cost_messages"], rows["sms"]["cost"]) == (14, 14)
    assert (rows["ads"]["cost_ads"], rows["ads"]["reach"], rows["ads"]["touches"]) == (13_000, 0, 0)
    assert rows["web"]["cost"] is None and rows["push"]["cost"] is None
    # revenue of the conversions that happened in each channel (4 + 1 web orders of 10 PLN, 6 + 2 store orders of 20)
    assert (rows["web"]["conversions"], rows["web"]["revenue"]) == (5, 5_000)
    assert (rows["store"]["conversions"], rows["store"]["revenue"]) == (8, 16_000)
    other = doc["costs_in_other_currencies"]
    assert sorted((o["channel"], o["source"], o["currency"], o["cost_minor"]) for o in other) == [
        ("ads", "ads", "USD", 500),
        ("push", "messages", "EUR", 2),
    ]  # fmt: skip
    email = rows["email"]
    markov = email["attributed"]["markov"]
    assert email["cpa"] == pytest.approx(154 / markov["conversions"])
    assert email["roas"] == pytest.approx(markov["value"] / 154)
    assert rows["ads"]["cpa"] is None and rows["ads"]["roas"] == 0.0  # spend without attributed sales
    # lift: email pools the two broadcasts, sms has the journey's counts, b3 (several channels) is only listed
    diff, se = mh([(10, 4, 5, 1), (8, 6, 4, 2)])
    assert email["lift"]["lift_abs"] == pytest.approx(diff) and email["lift"]["tests"] == 2
    assert email["lift"]["ci_high"] - email["lift"]["ci_low"] == pytest.approx(2 * Z95 * se)
    sms = rows["sms"]["lift"]
    assert sms["lift_abs"] == pytest.approx(0.1)
    assert sms["ci_low"] == pytest.approx(0.1 - Z95 * math.sqrt(0.2 * 0.8 / 100 + 0.1 * 0.9 / 50))
    assert rows["web"]["lift"] is None
    listed = {t["name"]: t for t in doc["holdout_tests"]}
    assert (listed["b1"]["n"], listed["b1"]["converted"], listed["b1"]["control_n"]) == (10, 4, 5)
    assert (listed["b3"]["channel"], listed["b3"]["converted"], listed["b3"]["control_converted"]) == (None, 1, 1)
    state.dispose()


def test_broadcast_lift_by_variant_against_its_holdout(events: EventStore) -> None:
    rows: list[tuple[Any, ...]] = []
    groups: dict[str, list[str]] = {"holdout": [], "A": [], "B": []}
    rng = np.random.default_rng(3)
    spent: dict[str, float] = {}
    for i in range(300):
        label = ("holdout", "A", "B")[i % 3]
        pid = f"P{i:03d}"
        groups[label].append(pid)
        rows.append((f"c{i}@{pid}", 0.1, "web", None, None, None))
        if rng.random() < {"holdout": 0.1, "A": 0.2, "B": 0.3}[label]:
            amount = int(rng.integers(1_000, 9_000))
            rows.append((f"c{i}@{pid}", 3, "web", OC, amount, "PLN"))
            spent[pid] = amount
        if i % 10 == 0:  # a purchase after the 7-day window does not count
            rows.append((f"c{i}@{pid}", 9, "web", OC, 50_000, "PLN"))
    events.load(event_rows(rows), 1, [])
    b = {"id": "B1", "name": "spring", "sent_at": (T0 + timedelta(days=1)).isoformat(), "channels": {"sms": 200},
         "groups": groups}  # fmt: skip
    doc = service.broadcast_lift(events, b, timedelta(days=7))
    assert doc["control"] == "holdout" and doc["control_n"] == 100 and doc["currency"] == "PLN"
    by_group = {t["group"]: t for t in doc["treatments"]}
    control_buy = np.array([pid in spent for pid in groups["holdout"]], dtype=float)
    control_rev = np.array([spent.get(pid, 0.0) for pid in groups["holdout"]])
    p_values = []
    for label in ("A", "B"):
        buy = np.array([pid in spent for pid in groups[label]], dtype=float)
        rev = np.array([spent.get(pid, 0.0) for pid in groups[label]])
        m = by_group[label]["metrics"]
        assert m["converted"]["rate"] == pytest.approx(buy.mean())
        assert m["converted"]["lift_abs"] == pytest.approx(buy.mean() - control_buy.mean())
        welch = stats.ttest_ind(rev, control_rev, equal_var=False)
        assert m["revenue"]["test"] == "welch"
        assert (m["revenue"]["statistic"], m["revenue"]["p_value"]) == pytest.approx((welch.statistic, welch.pvalue))
        p_values.append(m["converted"]["p_value"])
    low, high = sorted(p_values)
    holm = sorted(by_group[g]["metrics"]["converted"]["p_value_holm"] for g in ("A", "B"))
    assert holm == pytest.approx([min(1.0, 2 * low), max(min(1.0, 2 * low), high)])
    with pytest.raises(NotEnoughData, match="no group 'holdout'"):
        service.broadcast_lift(events, {**b, "groups": {"A": groups["A"]}}, timedelta(days=7))


def test_global_control_group_lift(events: EventStore) -> None:
    rows: list[tuple[Any, ...]] = []
    for i in range(60):
        rows.append((f"c{i}@P{i}", 1, "web", None, None, None))
        if i % 4 == 0 or (i < 20 and i % 2 == 1):
            rows.append((f"c{i}@P{i}", 2, "web", OC, 1_500, "PLN"))
    events.load(event_rows(rows), 1, [])
    control = {f"P{i}" for i in range(0, 60, 3)}
    doc = service.global_control_lift(events, lambda pid: pid in control, T0, T0 + timedelta(days=5))
    buyers = {f"P{i}" for i in range(60) if i % 4 == 0 or (i < 20 and i % 2 == 1)}
    messaged = [f"P{i}" for i in range(60) if f"P{i}" not in control]
    m = doc["treatments"][0]["metrics"]["converted"]
    assert doc["control"] == "control" and doc["control_n"] == 20 and doc["treatments"][0]["n"] == 40
    assert m["control_rate"] == pytest.approx(len(buyers & control) / 20)
    assert m["rate"] == pytest.approx(len(buyers & set(messaged)) / 40)
    with pytest.raises(NotEnoughData, match="global control group"):
        service.global_control_lift(events, lambda pid: False, T0, T0 + timedelta(days=5))
