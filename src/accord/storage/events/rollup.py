"""Derived tables kept beside the event log (rebuildable from it): daily counts per profile and the anchors.

`event_days` has one row per (profile, anchor, type, event, channel, UTC day) with the number of events, the sum
of `revenue_minor` and the first and last time; rows are additive (a day may appear in several rows, one per
loaded batch), so a batch is appended without reading the table. `event_anchors` has rows per (profile,
anchor) with the number of events and the newest (timestamp, event_id), additive too (one per loaded batch that had
the anchor: readers take the sum and the newest). `event_traits` has the `traits` object of every identify event
(profile, anchor, time, event id): trait conditions read it instead of the whole payloads of the log, whose `raw`
text DuckDB decodes vector by vector however few rows a query keeps. Identity changes move all three exactly as
they move the events (by anchor). Segment conditions that only need counts, revenue or first/last times read these
instead of the log; the boundary days of a window come from the log itself.
"""

from __future__ import annotations

DUCKDB_SCHEMA = """
CREATE TABLE IF NOT EXISTS event_days (
    profile_id VARCHAR NOT NULL,
    anchor VARCHAR,
    type VARCHAR NOT NULL,
    event VARCHAR,
    channel VARCHAR NOT NULL,
    day TIMESTAMPTZ NOT NULL,
    events BIGINT NOT NULL,
    revenue_minor BIGINT,
    first_at TIMESTAMPTZ NOT NULL,
    last_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS event_anchors (
    profile_id VARCHAR NOT NULL,
    anchor VARCHAR NOT NULL,
    events BIGINT NOT NULL,
    last_at TIMESTAMPTZ NOT NULL,
    last_event_id VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS event_traits (
    profile_id VARCHAR NOT NULL,
    anchor VARCHAR,
    timestamp TIMESTAMPTZ NOT NULL,
    event_id VARCHAR NOT NULL,
    traits JSON
);
"""


def duckdb_append_days(source: str) -> str:
    """Append the daily rows of the events in SOURCE (a table with the event columns; session time zone UTC)."""
    return (
        "INSERT INTO event_days SELECT profile_id, anchor, type, event, channel, date_trunc('day', timestamp), "
        f"count(*), sum(revenue_minor), min(timestamp), max(timestamp) FROM {source} WHERE profile_id IS NOT NULL "
        "GROUP BY profile_id, anchor, type, event, channel, date_trunc('day', timestamp)"
    )


def duckdb_append_traits(source: str) -> str:
    """Append the traits of the identify events in SOURCE."""
    return (
        "INSERT INTO event_traits SELECT profile_id, anchor, timestamp, event_id, json_extract(raw, '$.traits') "
        f"FROM {source} WHERE type = 'identify' AND profile_id IS NOT NULL"
    )


def duckdb_anchor_rows(source: str) -> str:
    """(profile, anchor) rows of the events in SOURCE."""
    return (
        "SELECT profile_id, anchor, count(*) AS events, max(timestamp) AS last_at, "
        "arg_max(event_id, (timestamp, event_id)) AS last_event_id "
        f"FROM {source} WHERE profile_id IS NOT NULL AND anchor IS NOT NULL GROUP BY profile_id, anchor"
    )


def duckdb_append_anchors(source: str) -> str:
    """Append the (profile, anchor) rows of the events in SOURCE (additive, like the daily rows)."""
    return "INSERT INTO event_anchors " + duckdb_anchor_rows(source)


def duckdb_move(table: str, changes: str) -> str:
    """Reassign the rows of TABLE whose anchor moved (CHANGES: anchor, profile_id), as the events are."""
    return (
        f"UPDATE {table} SET profile_id = c.profile_id FROM {changes} c "
        f"WHERE {table}.anchor = c.anchor AND {table}.profile_id IS DISTINCT FROM c.profile_id"
    )


CLICKHOUSE_DDL = [
    """
    CREATE TABLE IF NOT EXISTS {db}.event_days (
        profile_id String, anchor Nullable(String), type String, event Nullable(String), channel String,
        day DateTime64(6, 'UTC'), events Int64, revenue_minor Nullable(Int64),
        first_at DateTime64(6, 'UTC'), last_at DateTime64(6, 'UTC')
    ) ENGINE = MergeTree ORDER BY (profile_id, day)
    """,
    """
    CREATE TABLE IF NOT EXISTS {db}.event_traits (
        profile_id String, anchor Nullable(String), timestamp DateTime64(6, 'UTC'), event_id String,
        traits Nullable(String)
    ) ENGINE = MergeTree ORDER BY (profile_id, timestamp)
    """,
    """
    CREATE TABLE IF NOT EXISTS {db}.event_anchors (
        profile_id String, anchor String, events Int64, last_at DateTime64(6, 'UTC'), last_event_id String
    ) ENGINE = MergeTree ORDER BY (profile_id, anchor)
    """,
]

CLICKHOUSE_BUILD = [
    "TRUNCATE TABLE {db}.event_days",
    "INSERT INTO {db}.event_days SELECT assumeNotNull(profile_id), anchor, type, event, channel, "
    "toStartOfDay(timestamp, 'UTC'), count(), sum(revenue_minor), min(timestamp), max(timestamp) FROM {db}.events "
    "WHERE profile_id IS NOT NULL GROUP BY profile_id, anchor, type, event, channel, toStartOfDay(timestamp, 'UTC')",
    "TRUNCATE TABLE {db}.event_traits",
    "INSERT INTO {db}.event_traits SELECT assumeNotNull(profile_id), anchor, timestamp, event_id, "
    "JSONExtractRaw(raw, 'traits') FROM {db}.events WHERE type = 'identify' AND profile_id IS NOT NULL",
    "TRUNCATE TABLE {db}.event_anchors",
    "INSERT INTO {db}.event_anchors SELECT assumeNotNull(profile_id), assumeNotNull(anchor), count(), "
    "max(timestamp), argMax(event_id, (timestamp, event_id)) FROM {db}.events "
    "WHERE profile_id IS NOT NULL AND anchor IS NOT NULL GROUP BY profile_id, anchor",
]
