"""The event store's bulk mode (the demo loader's) stores the same events, rollups and timelines as slice loads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from accord.storage.events.duckdb import DuckDBEventStore

from .fixtures import scenario, to_table
from .test_rollups import _anchors, _days, edge_rows


def _load(store: DuckDBEventStore, rows: list[dict[str, Any]]) -> None:
    store.load(to_table(rows[:5]), 5, [])
    store.load(to_table(rows[5:9]), 11, [(1, "user_id:in-day", "out-day")])  # in-day merged into out-day
    store.load(to_table(rows[9:]), 20, [])
    store.apply_changes([(2, "user_id:in-day", "in-day"), (3, "user_id:b-mid", "b-late")])


def _state(store: DuckDBEventStore) -> tuple[Any, ...]:
    events = store.query("SELECT event_id, profile_id, anchor, timestamp FROM events ORDER BY ALL")
    timelines = {pid: store.timeline(pid, limit=100).events for (pid,) in store.query(
        "SELECT DISTINCT profile_id FROM events WHERE profile_id IS NOT NULL")}  # fmt: skip
    return events, _days(store), _anchors(store), timelines, store.cursors()


def _indexed(store: DuckDBEventStore) -> bool:
    found = store.query("SELECT count(*) FROM duckdb_indexes() WHERE index_name = 'events_profile_id'")
    return int(found[0][0]) == 1


def test_bulk_mode_loads_the_same_and_rebuilds_the_profile_index(tmp_path: Path) -> None:
    rows = edge_rows() + scenario()
    plain = DuckDBEventStore(tmp_path / "plain.duckdb")
    _load(plain, rows)
    bulk = DuckDBEventStore(tmp_path / "bulk.duckdb")
    with bulk.bulk_load():
        assert not _indexed(bulk)  # updates of profile_id do not maintain it slice by slice
        _load(bulk, rows)
    assert _indexed(bulk) and _indexed(plain)
    assert _state(bulk) == _state(plain)
    for table in ("event_days", "event_anchors"):  # compacted once, at the end
        assert bulk.query(f"SELECT count(*) FROM {table} WHERE fresh") == [(0,)], table
    bulk.close()
    reopened = DuckDBEventStore(tmp_path / "bulk.duckdb")
    assert _indexed(reopened)
    reopened.close()
    plain.close()


def test_bulk_mode_restores_the_index_when_a_load_fails(tmp_path: Path) -> None:
    store = DuckDBEventStore(tmp_path / "events.duckdb")
    try:
        with store.bulk_load():
            store.load(to_table(edge_rows()[:3]), 3, [])
            raise RuntimeError("interrupted")
    except RuntimeError:
        pass
    assert _indexed(store) and store.cursors()[0] == 3
    store.close()
