"""Reads of the event store for analytics: conversion paths across channels, purchases, channel reach."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from accord.analytics.customers import Transactions, transactions
from accord.analytics.errors import InvalidInput, NotEnoughData
from accord.analytics.options import DEFAULT_CONVERSION, parse_window
from accord.analytics.paths import PathSet, from_lists
from accord.storage.events import EventStore

TOUCH_TYPES = ("track", "page", "screen")
__all__ = ["DEFAULT_CONVERSION", "Period", "build_paths", "parse_window"]


@dataclass(frozen=True)
class Period:
    """A time range [start, end) of conversions, and the lookback window for their touches."""

    start: datetime
    end: datetime
    window: timedelta

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise InvalidInput("start and end must carry a time zone")
        if self.end <= self.start:
            raise InvalidInput("end must be after start")
        if self.window <= timedelta(0):
            raise InvalidInput("the lookback window must be positive")


def default_period(events: EventStore, window: timedelta, days: int | None = None) -> Period:
    """All conversions up to the newest event (or its last DAYS days)."""
    rows = events.query("SELECT min(timestamp), max(timestamp) FROM events")
    first, last = rows[0] if rows else (None, None)
    if first is None or last is None:
        raise NotEnoughData("the event store has no events")
    first, last = _aware(first), _aware(last)
    end = last + timedelta(microseconds=1)
    start = first if days is None else max(first, end - timedelta(days=days))
    return Period(start, end, window)


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(frozen=True)
class StorePaths:
    """Paths built from the event store, with what went into them."""

    paths: PathSet
    currency: str | None
    conversions: int
    conversions_other_currency: int
    profiles: int


def _rows(events: EventStore, period: Period, conversion: str) -> list[tuple[Any, ...]]:
    """Profile events in time order, one row per visit (a run of events in one channel without a 30-minute gap,
    timed at its first event) and one per conversion."""
    sql = """
        WITH e AS (
            SELECT profile_id, timestamp AS ts, channel, (type = 'track' AND event = ?) AS conv,
                   coalesce(revenue_minor, 0) AS rev, currency
            FROM events
            WHERE profile_id IS NOT NULL AND type IN ('track', 'page', 'screen')
              AND timestamp >= ? AND timestamp < ?
        ), f AS (
            SELECT *, lag(channel) OVER w AS prev_channel, lag(conv) OVER w AS prev_conv, lag(ts) OVER w AS prev_ts
            FROM e WINDOW w AS (PARTITION BY profile_id ORDER BY ts, conv)
        )
        SELECT profile_id, epoch(ts), channel, conv, rev, currency FROM f
        WHERE conv OR prev_channel IS NULL OR prev_channel <> channel OR prev_conv
           OR ts - prev_ts > INTERVAL 30 MINUTE
        ORDER BY profile_id, ts, conv
    """
    return events.query(sql, [conversion, period.start - period.window, period.end])


def build_paths(
    events: EventStore,
    period: Period,
    conversion: str = DEFAULT_CONVERSION,
    currency: str | None = None,
    include_conversion_channel: bool = True,
) -> StorePaths:
    """Conversion paths of every profile: touches in the lookback window before each conversion in the period
    (touches serve one conversion only), and non-converting paths of touches in the window before the period end.

    A touch is a visit: a run of events in one channel without a 30-minute gap. The channel of the conversion
    itself (e.g. the store of a till receipt) ends its path unless INCLUDE_CONVERSION_CHANNEL is off. Value is
    revenue in minor units of CURRENCY (the most common conversion currency by default); conversions in other
    currencies count with value 0.
    """
    rows = _rows(events, period, conversion)
    start_s, end_s = period.start.timestamp(), period.end.timestamp()
    window_s = period.window.total_seconds()
    if currency is None:
        counts = Counter(r[5] for r in rows if r[3] and r[5] and r[1] >= start_s)
        currency = counts.most_common(1)[0][0] if counts else None
    paths: list[list[str]] = []
    ages: list[list[float]] = []
    conv: list[float] = []
    nulls: list[float] = []
    values: list[float] = []
    n_conv = n_other = 0
    profiles: set[str] = set()

    def close(touches: list[tuple[float, str]], at: float, converted: bool, channel: str, rev: float) -> None:
        kept = [(t, ch) for t, ch in touches if at - t <= window_s]
        if converted and include_conversion_channel and (not kept or kept[-1][1] != channel):
            kept.append((at, channel))
        if not kept:
            return
        paths.append([ch for _, ch in kept])
        ages.append([(at - t) / 86400.0 for t, _ in kept])
        conv.append(1.0 if converted else 0.0)
        nulls.append(0.0 if converted else 1.0)
        values.append(rev)

    current: str | None = None
    touches: list[tuple[float, str]] = []
    for profile, ts, channel, is_conv, rev, cur in rows:
        ts = float(ts)
        if profile != current:
            if current is not None and touches:
                close(touches, end_s, False, "", 0.0)
            current, touches = profile, []
        if is_conv:
            if ts >= start_s:
                n_conv += 1
                profiles.add(profile)
                same = currency is not None and cur == currency
                if not same and rev:
                    n_other += 1
                close(touches, ts, True, channel, float(rev) if same else 0.0)
            touches = []
        else:
            touches.append((ts, channel))
    if current is not None and touches:
        close(touches, end_s, False, "", 0.0)
    if not paths:
        raise NotEnoughData("no conversion paths in this period")
    return StorePaths(from_lists(paths, conv, nulls, values, ages), currency, n_conv, n_other, len(profiles))


def purchases(events: EventStore, conversion: str = DEFAULT_CONVERSION, currency: str | None = None) -> Transactions:
    """Every conversion event as a purchase of its profile (value in minor units of CURRENCY, default the most
    common one; other currencies count with value 0)."""
    rows = events.query(
        "SELECT profile_id, epoch(timestamp) / 86400.0, coalesce(revenue_minor, 0), currency, channel FROM events "
        "WHERE profile_id IS NOT NULL AND type = 'track' AND event = ? ORDER BY timestamp",
        [conversion],
    )
    if not rows:
        raise NotEnoughData(f"no {conversion!r} events in the event store")
    if currency is None:
        currency = Counter(r[3] for r in rows if r[3]).most_common(1)[0][0] if any(r[3] for r in rows) else None
    value = np.array([float(r[2]) if r[3] == currency else 0.0 for r in rows])
    day = np.array([float(r[1]) for r in rows])
    return transactions([r[0] for r in rows], day, value, [r[4] for r in rows])


def channel_reach(
    events: EventStore, period: Period, conversion: str = DEFAULT_CONVERSION, currency: str | None = None
) -> list[dict[str, Any]]:
    """Per channel: profiles reached and touch events (conversions excluded), and the conversions that happened in
    the channel with their revenue (minor units of CURRENCY; conversions in other currencies add no revenue)."""
    sql = """
        SELECT channel,
               count(DISTINCT CASE WHEN NOT conv THEN profile_id END) AS reach,
               count(*) FILTER (WHERE NOT conv) AS touches,
               count(*) FILTER (WHERE conv) AS conversions,
               coalesce(sum(revenue_minor) FILTER (WHERE conv AND currency = ?), 0) AS revenue
        FROM (SELECT profile_id, channel, (type = 'track' AND event = ?) AS conv, revenue_minor, currency FROM events
              WHERE profile_id IS NOT NULL AND type IN ('track', 'page', 'screen')
                AND timestamp >= ? AND timestamp < ?)
        GROUP BY channel ORDER BY channel
    """
    return [
        {"channel": ch, "reach": int(reach), "touches": int(t), "conversions": int(c), "revenue": int(rev)}
        for ch, reach, t, c, rev in events.query(sql, [currency or "", conversion, period.start, period.end])
    ]


def purchase_rate_by_channels(
    events: EventStore, period: Period, conversion: str = DEFAULT_CONVERSION
) -> list[dict[str, Any]]:
    """Story 20: profiles grouped by how many channels reached them in the period, and the share who bought."""
    sql = """
        SELECT n_channels, count(*) AS profiles, count(*) FILTER (WHERE bought) AS buyers,
               sum(orders) AS orders
        FROM (
            SELECT profile_id,
                   count(DISTINCT CASE WHEN NOT conv THEN channel END) AS n_channels,
                   bool_or(conv) AS bought, count(*) FILTER (WHERE conv) AS orders
            FROM (SELECT profile_id, channel, (type = 'track' AND event = ?) AS conv FROM events
                  WHERE profile_id IS NOT NULL AND type IN ('track', 'page', 'screen')
                    AND timestamp >= ? AND timestamp < ?)
            GROUP BY profile_id
        ) GROUP BY n_channels ORDER BY n_channels
    """
    return [
        {
            "channels": int(n),
            "profiles": int(p),
            "buyers": int(b),
            "purchase_rate": float(b) / float(p) if p else 0.0,
            "orders_per_profile": float(o or 0) / float(p) if p else 0.0,
        }
        for n, p, b, o in events.query(sql, [conversion, period.start, period.end])
    ]


def product_interactions(events: EventStore) -> list[tuple[str, str, str, float]]:
    """(profile, event, sku, epoch seconds) for every product viewed, added to a cart or bought (one per order line)."""
    import json

    rows = events.query(
        "SELECT profile_id, event, epoch(timestamp), json_extract_string(raw, '$.properties.sku'), "
        "json_extract_string(raw, '$.properties.product_id'), json_extract(raw, '$.properties.products') "
        "FROM events WHERE profile_id IS NOT NULL AND type = 'track' "
        "AND event IN ('Order Completed', 'Product Added', 'Product Viewed') ORDER BY timestamp"
    )
    out: list[tuple[str, str, str, float]] = []
    for profile, event, ts, sku, product_id, products in rows:
        if event == "Order Completed":
            try:
                lines = json.loads(products) if isinstance(products, str) else (products or [])
            except ValueError:
                lines = []
            for line in lines if isinstance(lines, list) else []:
                item = isinstance(line, dict) and (line.get("sku") or line.get("product_id"))
                if item:
                    out.append((profile, event, str(item), float(ts)))
        elif sku or product_id:
            out.append((profile, event, str(sku or product_id), float(ts)))
    return out


def sales_lines(events: EventStore, conversion: str = DEFAULT_CONVERSION) -> list[tuple[str, str, datetime, float]]:
    """(store, sku, time, units) of every order line, in every channel; orders without a store are "online"."""
    import json

    rows = events.query(
        "SELECT coalesce(store_id, 'online'), timestamp, json_extract(raw, '$.properties.products') FROM events "
        "WHERE type = 'track' AND event = ? ORDER BY timestamp",
        [conversion],
    )
    out: list[tuple[str, str, datetime, float]] = []
    for store_id, ts, products in rows:
        try:
            lines = json.loads(products) if isinstance(products, str) else (products or [])
        except ValueError:
            continue
        for line in lines if isinstance(lines, list) else []:
            if not isinstance(line, dict):
                continue
            sku = line.get("sku") or line.get("product_id")
            qty = line.get("quantity", 1)
            if sku and isinstance(qty, int | float) and qty > 0:
                out.append((str(store_id), str(sku), _aware(ts), float(qty)))
    return out


MESSAGE_COST_SQL = """
    SELECT channel, json_extract_string(raw, '$.properties.currency') AS currency,
           sum(CAST(json_extract_string(raw, '$.properties.cost_minor') AS BIGINT)) AS cost, count(*) AS messages
    FROM events
    WHERE type = 'track' AND timestamp >= ? AND timestamp < ?
      AND json_extract_string(raw, '$.properties.delivery_id') IS NOT NULL
      AND json_extract_string(raw, '$.properties.cost_minor') IS NOT NULL
    GROUP BY 1, 2 ORDER BY 1, 2
"""


def message_costs(events: EventStore, period: Period) -> list[dict[str, Any]]:
    """Cost of the messages delivered in the period per channel and currency, from messaging's delivery events.

    Messaging prices a message once, on the event that first proves delivery (delivered, or an open or click
    before any delivery report), with properties cost_minor and currency; the event's channel is the timeline
    channel (email, sms, push, app for in-app, ...). Any track event carrying delivery_id and cost_minor counts, so
    delivery events imported from another sending tool (e.g. Segment's "Email Delivered") are priced the same way.
    """
    return [
        {"channel": ch, "currency": cur, "cost_minor": int(cost or 0), "messages": int(n)}
        for ch, cur, cost, n in events.query(MESSAGE_COST_SQL, [period.start, period.end])
    ]


def outcomes(
    events: EventStore,
    since: datetime,
    until: datetime,
    conversion: str = DEFAULT_CONVERSION,
    currency: str | None = None,
) -> dict[str, tuple[int, float]]:
    """Conversions and revenue (minor units of CURRENCY; other currencies count 0) per profile in [since, until)."""
    rows = events.query(
        "SELECT profile_id, count(*), sum(CASE WHEN currency = ? THEN coalesce(revenue_minor, 0) ELSE 0 END) "
        "FROM events WHERE profile_id IS NOT NULL AND type = 'track' AND event = ? "
        "AND timestamp >= ? AND timestamp < ? GROUP BY profile_id",
        [currency or "", conversion, since, until],
    )
    return {str(p): (int(n), float(v or 0)) for p, n, v in rows}


def main_currency(events: EventStore, conversion: str = DEFAULT_CONVERSION) -> str | None:
    """The most common currency of the conversion events (None when they carry none)."""
    rows = events.query(
        "SELECT currency, count(*) AS n FROM events WHERE type = 'track' AND event = ? AND currency IS NOT NULL "
        "GROUP BY currency ORDER BY n DESC, currency LIMIT 1",
        [conversion],
    )
    return str(rows[0][0]) if rows else None
