"""The daily tables: window edges answered exactly (DuckDB and chdb, with and without them), kept current by loads."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from accord.segments.compile import Vocabulary
from accord.segments.engines import QueryEngine
from accord.segments.rules import parse_documents
from accord.storage.events.duckdb import DuckDBEventStore

from .conftest import engines_for
from .fixtures import NOW, identify, order, to_table, track

D = datetime(2026, 5, 2, tzinfo=UTC)  # the UTC day on which NOW - 30 days (12:00) falls


def edge_rows() -> list[dict[str, Any]]:
    h = timedelta(hours=1)
    rows = [
        track(1, "in-edge", "Product Viewed", NOW - timedelta(days=30) + h),  # partial day, after the edge
        track(2, "out-edge", "Product Viewed", NOW - timedelta(days=30) - h),  # partial day, before the edge
        track(3, "in-day", "Product Viewed", NOW - timedelta(days=29)),
        track(4, "out-day", "Product Viewed", NOW - timedelta(days=31)),
        track(5, "future", "Product Viewed", NOW + 2 * h),
        # two views, one on each side of the edge: count 1 within 30d, last inside, first outside
        track(6, "both", "Product Viewed", NOW - timedelta(days=30) - 2 * h),
        track(7, "both", "Product Viewed", NOW - timedelta(days=30) + 2 * h, channel="app"),
        # between [D 06:00, D+3 18:00)
        order(10, "b-early", D + 5 * h, 1000),
        order(11, "b-first", D + 7 * h, 2000),
        order(12, "b-mid", D + timedelta(days=1, hours=12), 3000),
        order(13, "b-last", D + timedelta(days=3, hours=17), 4000),
        order(14, "b-late", D + timedelta(days=3, hours=19), 5000),
        order(15, "b-mid", D + timedelta(days=2), 500, channel="web", store="online"),
        identify(20, "in-edge", NOW - timedelta(days=400), country="PL"),
    ]
    return rows


@pytest.fixture(scope="module")
def edge_engines(tmp_path_factory: pytest.TempPathFactory, chdb_session: Any) -> Iterator[dict[str, QueryEngine]]:
    engines = engines_for(edge_rows(), tmp_path_factory.mktemp("edges"), chdb_session)
    yield engines
    engines["duckdb"].events.close()  # type: ignore[attr-defined]


EDGE_CASES = [
    ("within 30d, partial edge days", "{event: Product Viewed, within: 30d}", {"in-edge", "in-day", "future", "both"}),
    ("count exact across the edge", "{event: Product Viewed, within: 30d, count: {eq: 1}}",
     {"in-edge", "in-day", "future", "both"}),
    ("not within 30d", "{not: {event: Product Viewed, within: 30d}}",
     {"out-edge", "out-day", "b-early", "b-first", "b-mid", "b-last", "b-late"}),
    ("channel inside the edge day", "{event: Product Viewed, channel: app, within: 30d}", {"both"}),
    ("last within", "{event: Product Viewed, last: {within: 30d}}", {"in-edge", "in-day", "future", "both"}),
    ("first older than", "{event: Product Viewed, first: {older_than: 30d}}", {"out-edge", "out-day", "both"}),
    ("between with partial days at both ends", "{event: Order Completed, between: ['2026-05-02T06:00:00Z', "
     "'2026-05-05T18:00:00Z']}", {"b-first", "b-mid", "b-last"}),
    ("between, two orders", "{event: Order Completed, between: ['2026-05-02T06:00:00Z', '2026-05-05T18:00:00Z'], "
     "count: {gte: 2}}", {"b-mid"}),
    ("within one day", "{event: Order Completed, between: ['2026-05-02T06:00:00Z', '2026-05-02T08:00:00Z']}",
     {"b-first"}),
    ("after a time inside a day", "{event: Order Completed, after: '2026-05-05T18:00:00Z'}", {"b-late"}),
    ("before a time inside a day", "{event: Order Completed, before: '2026-05-02T06:00:00Z'}", {"b-early"}),
    ("whole days", "{event: Order Completed, between: [2026-05-03, 2026-05-05]}", {"b-mid"}),
    ("months", "{event: Order Completed, months: [5], channel: store}", {"b-early", "b-first", "b-mid", "b-last",
     "b-late"}),
    ("revenue and orders", "{all: [{computed: lifetime_revenue, gte: 3000}, {computed: orders, eq: 2}]}", {"b-mid"}),
    ("last purchase", "{computed: last_purchase_at, gte: '2026-05-05T00:00:00Z'}", {"b-last", "b-late"}),
    ("days since", "{computed: days_since_last_purchase, lte: 27}", {"b-last", "b-late"}),
    ("funnel (engaged from views)", "{computed: funnel_stage, eq: engaged}",
     {"in-edge", "out-edge", "in-day", "out-day", "future", "both"}),
    ("trait with events", "{all: [{trait: country, eq: PL}, {event: Product Viewed, within: 30d}]}", {"in-edge"}),
]  # fmt: skip


@pytest.mark.parametrize(("label", "rule", "expected"), EDGE_CASES, ids=[c[0] for c in EDGE_CASES])
def test_window_edges_are_exact(
    edge_engines: dict[str, QueryEngine], label: str, rule: str, expected: set[str]
) -> None:
    seg = parse_documents(f"name: t\nrule: {rule}", "segment")[0]
    found = {}
    for name, engine in edge_engines.items():
        query = Vocabulary().compiler(engine.dialect, NOW, rollups=engine.rollups).members_query(seg.rule)
        found[name] = {r[0] for r in engine.rows(query)}
    assert found == dict.fromkeys(edge_engines, expected)


def test_rollup_queries_read_the_daily_tables() -> None:
    seg = parse_documents("name: t\nrule: {event: Product Viewed, within: 30d}", "segment")[0]
    for dialect in ("duckdb", "clickhouse"):
        sql = Vocabulary().compiler(dialect, NOW, rollups=True).members_query(seg.rule).sql
        assert "event_days" in sql and "event_anchors" in sql
        assert "event_days" not in Vocabulary().compiler(dialect, NOW).members_query(seg.rule).sql


def _days(store: DuckDBEventStore) -> list[tuple[Any, ...]]:
    return store.query(
        "SELECT profile_id, anchor, type, event, channel, day, sum(events), sum(revenue_minor), min(first_at), "
        "max(last_at) FROM event_days GROUP BY ALL ORDER BY ALL"
    )


def _anchors(store: DuckDBEventStore) -> list[tuple[Any, ...]]:
    """The anchors' rows folded as readers fold them (they are additive: a row per loaded batch)."""
    return store.query(
        "SELECT profile_id, anchor, sum(events), max(last_at), arg_max(last_event_id, (last_at, last_event_id)) "
        "FROM event_anchors GROUP BY ALL ORDER BY ALL"
    )


def _traits(store: DuckDBEventStore) -> list[tuple[Any, ...]]:
    return store.query("SELECT profile_id, anchor, timestamp, event_id, traits::VARCHAR FROM event_traits ORDER BY ALL")


def test_loads_and_identity_changes_keep_the_daily_tables_equal_to_a_rebuild(tmp_path: Path) -> None:
    store = DuckDBEventStore(tmp_path / "events.duckdb")
    rows = edge_rows()
    store.load(to_table(rows[:5]), 5, [])
    store.load(to_table(rows[5:9]), 11, [(1, "user_id:in-day", "out-day")])  # in-day merged into out-day
    store.load(to_table(rows[9:]), 20, [])
    store.apply_changes([(2, "user_id:in-day", "in-day"), (3, "user_id:b-mid", "b-late")])
    store.load(to_table([track(30, "b-late", "Product Viewed", NOW), track(31, "b-late", "Page Viewed", NOW)]), 31, [])
    incremental = (_days(store), _anchors(store), _traits(store))
    assert ("b-late", "user_id:b-mid", 2) in [r[:3] for r in incremental[1]]
    assert incremental[2] and all(r[4] is not None for r in incremental[2])
    store.rebuild_rollups()
    assert (_days(store), _anchors(store), _traits(store)) == incremental
    raw = store.query("SELECT profile_id, count(*) FROM events WHERE profile_id IS NOT NULL GROUP BY ALL ORDER BY ALL")
    assert store.query("SELECT profile_id, sum(events) FROM event_days GROUP BY ALL ORDER BY ALL") == raw
    store.close()
    reopened = DuckDBEventStore(tmp_path / "events.duckdb", read_only=True)
    assert reopened.rollups_ready()
    reopened.close()


def test_an_older_file_gets_its_daily_tables_when_opened(tmp_path: Path) -> None:
    store = DuckDBEventStore(tmp_path / "events.duckdb")
    store.load(to_table(edge_rows()), 20, [])
    expected = _days(store)
    store.query("DROP TABLE event_days")
    store.query("DROP TABLE event_anchors")
    assert not store.rollups_ready()
    store.close()
    store = DuckDBEventStore(tmp_path / "events.duckdb")
    assert store.rollups_ready() and _days(store) == expected
    store.close()


def _rows(store: DuckDBEventStore, table: str) -> list[tuple[Any, ...]]:
    """TABLE's rows as stored (not folded), without the `fresh` mark."""
    return store.query(f"SELECT * EXCLUDE (fresh) FROM {table} ORDER BY ALL")


def _load_with_moves(store: DuckDBEventStore) -> None:
    rows = edge_rows()
    store.load(to_table(rows[:5]), 5, [])
    store.load(to_table(rows[5:9]), 11, [(1, "user_id:in-day", "out-day")])
    store.load(to_table(rows[9:]), 20, [])
    store.apply_changes([(2, "user_id:in-day", "in-day"), (3, "user_id:b-mid", "b-late")])
    for seq in range(30, 34):  # the same profiles and days again, batch after batch
        store.load(to_table([track(seq, "b-late", "Product Viewed", NOW), order(seq + 10, "both", NOW, 100)]), seq, [])


def test_compaction_leaves_the_rows_a_rebuild_writes(tmp_path: Path) -> None:
    """Loads and identity moves append rows; compaction folds them into one row per profile and day (and profile
    and anchor), exactly the rows a rebuild writes, and the readers' sums never change."""
    store = DuckDBEventStore(tmp_path / "events.duckdb")
    store.compact_after_rows = 10**9
    _load_with_moves(store)
    folded = (_days(store), _anchors(store))
    appended = (_rows(store, "event_days"), _rows(store, "event_anchors"))
    store.compact_rollups()
    compacted = (_rows(store, "event_days"), _rows(store, "event_anchors"))
    assert store.query("SELECT count(*) FROM event_days WHERE fresh OR fresh IS NULL") == [(0,)]
    assert (_days(store), _anchors(store)) == folded
    store.rebuild_rollups()
    rebuilt = (_rows(store, "event_days"), _rows(store, "event_anchors"))
    assert compacted == rebuilt
    assert len(appended[0]) > len(rebuilt[0]) and len(appended[1]) > len(rebuilt[1])  # there was work to do
    store.close()


def test_writes_compact_when_enough_fresh_rows_gathered(tmp_path: Path) -> None:
    """Direct loads, identity changes and the writer thread's staged batches all compact once the fresh rows
    reach the threshold; the rows then equal a rebuild's."""
    store = DuckDBEventStore(tmp_path / "events.duckdb")
    store.compact_after_rows, store.compact_ratio = 3, 0
    _load_with_moves(store)
    store.stage(to_table([track(50, "b-late", "Product Viewed", NOW)]), 50, [])
    store.stage(to_table([track(51, "b-late", "Product Viewed", NOW)]), 51, [(4, "user_id:both", "b-late")])
    store.flush()
    assert store.compactions >= 3
    store.compact_rollups()
    compacted = (_rows(store, "event_days"), _rows(store, "event_anchors"))
    store.rebuild_rollups()
    assert (_rows(store, "event_days"), _rows(store, "event_anchors")) == compacted
    store.close()


def test_an_older_file_without_the_fresh_mark_is_compacted_whole(tmp_path: Path) -> None:
    store = DuckDBEventStore(tmp_path / "events.duckdb")
    store.compact_after_rows = 10**9
    _load_with_moves(store)
    store.query("ALTER TABLE event_days DROP COLUMN fresh")
    store.query("ALTER TABLE event_anchors DROP COLUMN fresh")
    store.close()
    store = DuckDBEventStore(tmp_path / "events.duckdb")
    assert store.query("SELECT bool_and(fresh) FROM event_days") == [(True,)]
    folded = (_days(store), _anchors(store))
    store.compact_rollups()
    assert (_days(store), _anchors(store)) == folded
    compacted = (_rows(store, "event_days"), _rows(store, "event_anchors"))
    store.rebuild_rollups()
    assert (_rows(store, "event_days"), _rows(store, "event_anchors")) == compacted
    store.close()
