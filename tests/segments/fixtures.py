"""Hand-made events for segment tests, loaded into a DuckDB event store and (the same rows) into chdb."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from accord.storage.events.base import EVENT_COLUMNS
from accord.storage.events.duckdb import DuckDBEventStore

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def days_ago(n: float) -> datetime:
    return NOW - timedelta(days=n)


def event_row(
    seq: int,
    profile: str,
    kind: str,
    name: str | None = None,
    *,
    at: datetime,
    channel: str = "web",
    properties: dict[str, Any] | None = None,
    traits: dict[str, Any] | None = None,
    revenue_minor: int | None = None,
    store_id: str | None = None,
) -> dict[str, Any]:
    raw: dict[str, Any] = {"type": kind}
    if name:
        raw["event"] = name
    if properties is not None:
        raw["properties"] = properties
    if traits is not None:
        raw["traits"] = traits
    return {
        "event_id": f"e{seq:06d}",
        "journal_seq": seq,
        "source_id": "s",
        "message_id": f"m{seq}",
        "type": kind,
        "event": name,
        "name": None,
        "channel": channel,
        "timestamp": at,
        "received_at": at,
        "sent_at": None,
        "original_timestamp": None,
        "user_id": profile,
        "anonymous_id": None,
        "identifiers": [f"user_id:{profile}"],
        "anchor": f"user_id:{profile}",
        "profile_id": profile,
        "revenue_minor": revenue_minor,
        "currency": "PLN" if revenue_minor is not None else None,
        "store_id": store_id,
        "library": None,
        "campaign_source": None,
        "campaign_medium": None,
        "campaign_name": None,
        "raw": json.dumps(raw),
    }


def to_table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.table({c: pa.array([r[c] for r in rows], t) for c, t in EVENT_COLUMNS.items()})


def order(seq: int, profile: str, at: datetime, revenue: int, channel: str = "store", store: str | None = "S1",
          categories: tuple[str, ...] = ("Shoes",)) -> dict[str, Any]:  # fmt: skip
    props = {"revenue": revenue / 100, "products": [{"sku": f"k{i}", "category": c} for i, c in enumerate(categories)]}
    return event_row(seq, profile, "track", "Order Completed", at=at, channel=channel, properties=props,
                     revenue_minor=revenue, store_id=store)  # fmt: skip


def identify(seq: int, profile: str, at: datetime, **traits: Any) -> dict[str, Any]:
    return event_row(seq, profile, "identify", at=at, traits=traits)


def track(seq: int, profile: str, name: str, at: datetime, channel: str = "web", **props: Any) -> dict[str, Any]:
    return event_row(seq, profile, "track", name, at=at, channel=channel, properties=props)


def scenario() -> list[dict[str, Any]]:
    """Seven customers, each made to differ on some condition."""
    rows = [
        # ann: PL, loyal store shopper, 3 store orders in the year, none in 60 days
        identify(1, "ann", days_ago(300), country="PL", email="ann@example.com", age=34, vip=True),
        order(2, "ann", days_ago(250), 12000),
        order(3, "ann", days_ago(150), 8000, categories=("Shoes", "Bags")),
        order(4, "ann", days_ago(90), 5000, store="S2"),
        # bob: DK, 2 store orders, one 10 days ago (recent buyer)
        identify(5, "bob", days_ago(200), country="DK", email="bob@example.net", age=51),
        order(6, "bob", days_ago(120), 3000),
        order(7, "bob", days_ago(10), 4500, channel="web", store="online"),
        # cid: PL then moved to GB (latest trait wins), 2 store orders long ago
        identify(8, "cid", days_ago(400), country="PL"),
        identify(9, "cid", days_ago(30), country="GB"),
        order(10, "cid", days_ago(200), 2000),
        order(11, "cid", days_ago(180), 2500),
        # dan: no orders; viewed products, app only
        identify(12, "dan", days_ago(20), country="DK", name="Dan Dahl"),
        track(13, "dan", "Product Viewed", days_ago(5), channel="app", category="Shoes", price=120.0),
        track(14, "dan", "Product Added", days_ago(5), channel="app", category="Shoes", price=120.0),
        track(15, "dan", "Product Viewed", days_ago(3), channel="app", category="Bags", price=80),
        # eve: PL, 1 web order in 400 days ago window and cart abandoner now
        identify(16, "eve", days_ago(100), country="PL", age=28),
        order(17, "eve", days_ago(400), 9900, channel="web", store="online"),
        track(18, "eve", "Product Added", days_ago(2), category="Toys", price=10.5),
        # fay: no traits at all; a page view
        event_row(19, "fay", "page", at=days_ago(1), properties={"path": "/"}),
        # gus: DK, 5 store orders (loyal funnel), most recent 40 days ago
        identify(20, "gus", days_ago(365), country="DK"),
        *[order(21 + i, "gus", days_ago(40 + 50 * i), 1000 * (i + 1), store="S3" if i else "S1") for i in range(5)],
    ]
    return rows


def duck_store(path: Path, rows: list[dict[str, Any]]) -> DuckDBEventStore:
    store = DuckDBEventStore(path)
    store.load(to_table(rows), max(r["journal_seq"] for r in rows), [])
    return store
