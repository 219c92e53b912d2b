"""Read-only figures for the pages, from the event store (until the analytics domain offers them)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from accord.storage.events import EventStore
from accord.web.figures import Figures


def overview(events: EventStore, days: int = 30) -> dict[str, Any]:
    """Events per day by channel, active customers and revenue by channel over the DAYS up to the newest event."""
    newest = events.query("SELECT max(timestamp) FROM events")
    end = newest[0][0] if newest else None
    if not isinstance(end, datetime):
        return {
            "start": None, "end": None, "days": days, "per_day": [], "active_customers": 0, "revenue": [],
            "deliveries": [],
        }  # fmt: skip
    start = end - timedelta(days=days)
    # UTC day number by integer division: 3x cheaper than CAST(timestamptz AS DATE) (measured on the demo)
    per_day = events.query(
        "SELECT epoch_us(timestamp) // 86400000000 AS day, channel, count(*) FROM events WHERE timestamp > ? "
        "GROUP BY ALL ORDER BY day, channel",
        [start],
    )
    active = events.query(
        "SELECT count(DISTINCT profile_id) FROM events WHERE timestamp > ? AND profile_id IS NOT NULL", [start]
    )
    revenue = events.query(
        "SELECT channel, currency, sum(revenue_minor), count(*) FROM events "
        "WHERE timestamp > ? AND revenue_minor IS NOT NULL AND currency IS NOT NULL "
        "GROUP BY ALL ORDER BY currency, sum(revenue_minor) DESC",
        [start],
    )
    deliveries = events.query(
        "SELECT channel, event, count(*) FROM events WHERE timestamp > ? AND type = 'track' "
        "AND event IN ('Message Sent', 'Message Delivered', 'Message Opened', 'Message Clicked', "
        "'Message Bounced', 'Message Failed') GROUP BY ALL ORDER BY channel",
        [start],
    )
    return {
        "start": start,
        "end": end,
        "days": days,
        "deliveries": delivery_rows(deliveries),
        "per_day": [{"day": _day(d), "channel": ch, "events": int(n)} for d, ch, n in per_day],
        "active_customers": int(active[0][0]) if active else 0,
        "revenue": [
            {"channel": ch, "currency": cur, "revenue_minor": int(total), "orders": int(n)}
            for ch, cur, total, n in revenue
        ],
    }


DELIVERY_STAGES = {
    "Message Sent": "sent",
    "Message Delivered": "delivered",
    "Message Opened": "opened",
    "Message Clicked": "clicked",
    "Message Bounced": "failed",
    "Message Failed": "failed",
}


def delivery_rows(counts: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """(channel, event, n) rows of message events -> one row per channel: sent, delivered, opened, clicked, failed."""
    by_channel: dict[str, dict[str, Any]] = {}
    for channel, event, n in counts:
        row = by_channel.setdefault(
            channel, {"channel": channel, "sent": 0, "delivered": 0, "opened": 0, "clicked": 0, "failed": 0}
        )
        row[DELIVERY_STAGES[event]] += int(n)
    return sorted(by_channel.values(), key=lambda r: (-r["sent"], r["channel"]))


def _day(number: int) -> str:
    return (date(1970, 1, 1) + timedelta(days=int(number))).isoformat()


MAX_STALE_SECONDS = 30.0
REFRESH_WAIT_SECONDS = 0.2  # a refresh done within this is shown at once; a slower one serves the last figures
OVERVIEWS = Figures("overview")


def cached_overview(events: EventStore, days: int = 30) -> dict[str, Any]:
    """The overview: the last figures, refreshed in the background when new events were loaded and they are over
    30 seconds old (only the very first request for DAYS waits for the computation)."""

    def compute() -> dict[str, Any]:
        data = overview(events, days)
        data["computed_at"] = datetime.now(UTC)
        return data

    data = OVERVIEWS.get(events, days, compute, MAX_STALE_SECONDS, first_wait=None, refresh_wait=REFRESH_WAIT_SECONDS)
    assert data is not None  # the first computation was waited for
    return data


def channel_totals(per_day: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """Sum of the per-day rows by channel, largest first."""
    totals: dict[str, int] = {}
    for row in per_day:
        totals[row["channel"]] = totals.get(row["channel"], 0) + row["events"]
    return sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))


def store_visits(events: EventStore, profile_id: str, store_id: str) -> dict[str, Any]:
    """How often and when the customer was last seen at STORE_ID (till receipts, check-ins)."""
    rows = events.query(
        "WITH mine AS MATERIALIZED (SELECT timestamp, store_id FROM events WHERE profile_id = ?) "
        "SELECT count(*), max(timestamp), count(DISTINCT CAST(timestamp AS DATE)) FROM mine WHERE store_id = ?",
        [profile_id, store_id],
    )
    count, last, visit_days = rows[0] if rows else (0, None, 0)
    return {"events": int(count or 0), "last_at": last if isinstance(last, datetime) else None, "days": visit_days}


def store_known(events: EventStore, store_id: str) -> bool:
    """Whether any event happened at STORE_ID (until the commerce domain keeps the store list)."""
    return bool(events.query("SELECT 1 FROM events WHERE store_id = ? LIMIT 1", [store_id]))
