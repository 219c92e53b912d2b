"""Derived tables kept beside the event log (rebuildable from it): daily counts per profile and the anchors.

`event_days` has one row per (profile, anchor, type, event, channel, UTC day) with the number of events, the sum
of `revenue_minor` and the first and last time; rows are additive (a day may appear in several rows, one per
loaded batch), so a batch is appended without reading the table; such rows are `fresh` until a compaction folds
them (DUCKDB_COMPACT below). `event_anchors` has rows per (profile,
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
    last_at TIMESTAMPTZ NOT NULL,
    fresh BOOLEAN DEFAULT true
);
CREATE TABLE IF NOT EXISTS event_anchors (
    profile_id VARCHAR NOT NULL,
    anchor VARCHAR NOT NULL,
    events BIGINT NOT NULL,
    last_at TIMESTAMPTZ NOT NULL,
    last_event_id VARCHAR NOT NULL,
    fresh BOOLEAN DEFAULT true
);
-- files from before compaction: their rows were never compacted (the first compaction folds them)
ALTER TABLE event_days ADD COLUMN IF NOT EXISTS fresh BOOLEAN DEFAULT true;
ALTER TABLE event_anchors ADD COLUMN IF NOT EXISTS fresh BOOLEAN DEFAULT true;
CREATE TABLE IF NOT EXISTS event_traits (
    profile_id VARCHAR NOT NULL,
    anchor VARCHAR,
    timestamp TIMESTAMPTZ NOT NULL,
    event_id VARCHAR NOT NULL,
    traits JSON
);
"""


def duckdb_append_days(source: str, fresh: bool = True) -> str:
    """Append the daily rows of the events in SOURCE (a table with the event columns; session time zone UTC);
    FRESH: rows a later compaction folds into the others of their profile and day (a rebuild's are final, and
    written in day order: compaction and day windows then read only the row groups of their days)."""
    return (
        "INSERT INTO event_days SELECT profile_id, anchor, type, event, channel, date_trunc('day', timestamp), "
        f"count(*), sum(revenue_minor), min(timestamp), max(timestamp), {fresh} FROM {source} "
        "WHERE profile_id IS NOT NULL GROUP BY profile_id, anchor, type, event, channel, date_trunc('day', timestamp)"
        + ("" if fresh else " ORDER BY date_trunc('day', timestamp)")
    )


def duckdb_append_traits(source: str) -> str:
    """Append the traits of the identify events in SOURCE."""
    return (
        "INSERT INTO event_traits SELECT profile_id, anchor, timestamp, event_id, json_extract(raw, '$.traits') "
        f"FROM {source} WHERE type = 'identify' AND profile_id IS NOT NULL"
    )


def duckdb_anchor_rows(source: str, fresh: bool = True) -> str:
    """(profile, anchor) rows of the events in SOURCE."""
    return (
        "SELECT profile_id, anchor, count(*) AS events, max(timestamp) AS last_at, "
        f"arg_max(event_id, (timestamp, event_id)) AS last_event_id, {fresh} AS fresh "
        f"FROM {source} WHERE profile_id IS NOT NULL AND anchor IS NOT NULL GROUP BY profile_id, anchor"
    )


def duckdb_append_anchors(source: str) -> str:
    """Append the (profile, anchor) rows of the events in SOURCE (additive, like the daily rows)."""
    return "INSERT INTO event_anchors " + duckdb_anchor_rows(source)


def duckdb_move(table: str, changes: str) -> str:
    """Reassign the rows of TABLE whose anchor moved (CHANGES: anchor, profile_id), as the events are; the moved
    rows of the additive tables become fresh (their new profile may now hold two rows of one day or anchor)."""
    fresh_too = ", fresh = true" if table in ("event_days", "event_anchors") else ""
    return (
        f"UPDATE {table} SET profile_id = c.profile_id{fresh_too} FROM {changes} c "
        f"WHERE {table}.anchor = c.anchor AND {table}.profile_id IS DISTINCT FROM c.profile_id"
    )


# Compaction: the additive rows that loads and identity moves left (`fresh`) are folded, with every other row of
# their profile and day (event_days) or profile and anchor (event_anchors), into one row each. Readers see the same
# sums before and after; the tables stop growing by a row per loaded batch. The touched days bound the scan of
# event_days: a rebuild writes it in day order and loads append recent days, so its zone maps prune the rest.
DUCKDB_COMPACT = {
    "event_days": [
        "CREATE TEMP TABLE touched_days AS SELECT DISTINCT profile_id, day FROM event_days WHERE fresh",
        "CREATE TEMP TABLE folded_days AS SELECT d.profile_id, d.anchor, d.type, d.event, d.channel, d.day, "
        "sum(d.events)::BIGINT, sum(d.revenue_minor)::BIGINT, min(d.first_at), max(d.last_at), false "
        "FROM event_days d SEMI JOIN touched_days t ON d.profile_id = t.profile_id AND d.day = t.day "
        "WHERE d.day BETWEEN (SELECT min(day) FROM touched_days) AND (SELECT max(day) FROM touched_days) "
        "GROUP BY d.profile_id, d.anchor, d.type, d.event, d.channel, d.day",
        "DELETE FROM event_days USING touched_days t WHERE event_days.profile_id = t.profile_id "
        "AND event_days.day = t.day "
        "AND event_days.day BETWEEN (SELECT min(day) FROM touched_days) AND (SELECT max(day) FROM touched_days)",
        "INSERT INTO event_days SELECT * FROM folded_days",
        "DROP TABLE touched_days",
        "DROP TABLE folded_days",
    ],
    "event_anchors": [  # one row per identifier: rewritten whole (a stream touches most of it between two runs)
        "CREATE TEMP TABLE folded_anchors AS SELECT profile_id, anchor, sum(events)::BIGINT, max(last_at), "
        "arg_max(last_event_id, (last_at, last_event_id)), false FROM event_anchors GROUP BY profile_id, anchor",
        "DELETE FROM event_anchors",
        "INSERT INTO event_anchors SELECT * FROM folded_anchors",
        "DROP TABLE folded_anchors",
    ],
}


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
