"""Story 21 on the demo retailer: the example segments equal an independent polars computation over the files.

The independent side reads the generated files (POS receipts and Segment events), maps each order to a profile
through the identity graph (identifiers normalised as the graph stores them) and computes each segment's rule
with polars. Only the row-to-profile mapping is shared with Accord; the rules are computed separately.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from accord.identity import queries
from accord.identity.normalize import identifier_key, normalise_value
from accord.platform import open_platform
from accord.segments import service
from accord.segments.engines import DuckDBEngine

from ..conftest import make_settings

ACCORD = str(Path(sys.executable).parent / "accord")


def _orders(data: Path, graph: dict[str, str], rules: object) -> pl.DataFrame:
    """One row per order: profile_id, at (UTC), store (bool)."""
    stores = {s["store_id"]: s["country"] for s in json.loads((data / "stores.json").read_text())}
    rows = []
    pos = pl.read_csv(data / "orders.csv", infer_schema_length=0).unique(subset=["order_id"], keep="first")
    for r in pos.iter_rows(named=True):
        region = stores.get(r["store_id"])
        keys = []
        for kind in ("loyalty_card", "email", "phone"):
            value = normalise_value(kind, r[kind], rules, region)  # type: ignore[arg-type]
            if value:
                keys.append(identifier_key(kind, value))
        pid = next((graph[k] for k in keys if k in graph), None)
        if pid:
            rows.append((pid, datetime.fromisoformat(r["ordered_at"]).astimezone(UTC), True))
    with (data / "events.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            if '"Order Completed"' not in line:
                continue
            message = json.loads(line)
            if message.get("event") != "Order Completed":
                continue
            keys = [f"user_id:{message['userId']}"] if message.get("userId") else []
            keys += [f"anonymous_id:{message['anonymousId']}"] if message.get("anonymousId") else []
            pid = next((graph[k] for k in keys if k in graph), None)
            if pid:
                at = datetime.fromisoformat(message["timestamp"].replace("Z", "+00:00")).astimezone(UTC)
                rows.append((pid, at, False))
    return pl.DataFrame(rows, schema={"profile_id": pl.String, "at": pl.Datetime("us", "UTC"), "store": pl.Boolean},
                        orient="row")  # fmt: skip


def test_demo_segments_match_an_independent_polars_computation(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {**os.environ, "ACCORD_HOME": str(home)}
    loaded = subprocess.run(
        [ACCORD, "demo", "--customers", "300", "--days", "365", "--seed", "21", "--no-serve"],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    applied = json.loads((home / "demo.json").read_text())["load"]["segments"]
    assert set(applied) >= {"loyal-store-shoppers", "lapsed-spring-buyers", "multi-channel-customers"}

    platform = open_platform(make_settings(home))
    try:
        graph = queries.grouping(platform.state)
        orders = _orders(home / "demo-data", graph, platform.rules)
        # the demo also places a few orders through commerce (pickups, returns): part of its data, read as rows
        from accord.collect.sources import source_by_name
        from accord.commerce.events import SOURCE_NAME

        commerce = source_by_name(platform.state, SOURCE_NAME)
        if commerce is not None:
            placed = platform.events.query(
                "SELECT profile_id, timestamp, channel = 'store' FROM events "
                "WHERE event = 'Order Completed' AND source_id = ? AND profile_id IS NOT NULL",
                [commerce.id],
            )
            extra = pl.DataFrame(
                [(pid, at.astimezone(UTC), store) for pid, at, store in placed],
                schema={"profile_id": pl.String, "at": pl.Datetime("us", "UTC"), "store": pl.Boolean},
                orient="row",
            )
            orders = pl.concat([orders, extra])
        now = orders["at"].max() + timedelta(hours=1)  # type: ignore[operator]
        engine = DuckDBEngine(platform.events)
        for name in ("loyal-store-shoppers", "lapsed-spring-buyers", "multi-channel-customers"):
            service.evaluate(platform.state, engine, None, name, now)

        year_ago, days_90 = now - timedelta(days=365), now - timedelta(days=90)
        per = orders.group_by("profile_id").agg(
            (pl.col("store") & (pl.col("at") >= year_ago)).sum().alias("store_year"),
            pl.col("store").any().alias("in_store"),
            (~pl.col("store")).any().alias("online"),
            pl.col("at").dt.month().is_in([3, 4, 5]).any().alias("spring"),
            (pl.col("at") >= days_90).any().alias("recent"),
        )
        expected = {
            "loyal-store-shoppers": per.filter(pl.col("store_year") >= 3),
            "lapsed-spring-buyers": per.filter(pl.col("spring") & ~pl.col("recent")),
            "multi-channel-customers": per.filter(pl.col("in_store") & pl.col("online")),
        }
        for name, frame in expected.items():
            mine = set(service.member_ids(platform.state, name))
            theirs = set(frame["profile_id"].to_list())
            assert theirs, f"{name}: the demo should have members"
            assert mine == theirs, (name, len(mine), len(theirs), sorted(mine ^ theirs)[:5])
    finally:
        platform.close()
