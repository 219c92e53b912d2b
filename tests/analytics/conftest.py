"""Fixtures of the analytics tests: a real DuckDB event store filled with hand-written timelines."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from accord.storage.events import EventStore, open_event_store
from accord.storage.events.base import EVENT_COLUMNS

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def event_rows(rows: list[tuple[Any, ...]]) -> pa.Table:
    """(profile_or_anchor, day offset, channel, event or None for a page, revenue_minor, currency) -> events batch.

    A first element "anchor@profile" sets the anchor (identity) and the profile it currently belongs to.
    """
    cols: dict[str, list[Any]] = {name: [] for name in EVENT_COLUMNS}
    for i, (who, day, channel, event, revenue, currency) in enumerate(rows):
        anchor, _, profile = who.partition("@")
        ts = T0 + timedelta(days=day)
        values = {
            "event_id": f"e{i:06d}",
            "journal_seq": i + 1,
            "source_id": "src",
            "message_id": f"m{i:06d}",
            "type": "track" if event else "page",
            "event": event,
            "name": None if event else "Home",
            "channel": channel,
            "timestamp": ts,
            "received_at": ts,
            "sent_at": ts,
            "original_timestamp": ts,
            "user_id": None,
            "anonymous_id": None,
            "identifiers": [anchor],
            "anchor": anchor,
            "profile_id": profile or anchor,
            "revenue_minor": revenue,
            "currency": currency,
            "store_id": None,
            "library": None,
            "campaign_source": None,
            "campaign_medium": None,
            "campaign_name": None,
            "raw": "{}",
        }
        for name in EVENT_COLUMNS:
            cols[name].append(values[name])
    return pa.table({name: pa.array(cols[name], EVENT_COLUMNS[name]) for name in EVENT_COLUMNS})


@pytest.fixture
def events(tmp_path: Path) -> Iterator[EventStore]:
    store = open_event_store(f"duckdb:///{tmp_path / 'events.duckdb'}")
    try:
        yield store
    finally:
        store.close()
