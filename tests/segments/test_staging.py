"""Staged slices (handed to the store's writer, evaluated before they are written) and the integer profile keys."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from accord.collect.journal import Journal
from accord.collect.processor import Processor
from accord.segments import service
from accord.segments.compile import Vocabulary
from accord.segments.engines import DuckDBEngine
from accord.segments.rules import parse_documents
from accord.segments.runtime import SegmentRuntime
from accord.storage import create_state_engine, migrate
from accord.storage.events.duckdb import DuckDBEventStore

from .fixtures import NOW, days_ago, identify, order, to_table, track

RULE = """
name: repeat-store-buyers
rule:
  all:
    - trait: country
      eq: PL
    - event: Order Completed
      channel: store
      count: {gte: 2}
"""


def members(store: DuckDBEventStore, ids: list[str]) -> set[str]:
    """The incremental (subset) query's members among IDS."""
    rule = parse_documents(RULE, "segment")[0].rule
    query = Vocabulary().compiler("duckdb", NOW, rollups=True, subset=True).members_query(rule, True)
    return {str(r[0]) for r in store.query(query.sql, {**query.params, "ids": ids})}  # type: ignore[arg-type]


def order_counts(store: DuckDBEventStore, ids: list[str]) -> dict[str, int]:
    """Order Completed events of IDS as a subset query reads them (stored and staged)."""
    query = (
        Vocabulary()
        .compiler("duckdb", NOW, rollups=True, subset=True)
        .finish(
            "WITH x AS (SELECT 1) SELECT profile_id, count(*) FROM events WHERE event = 'Order Completed' "
            "GROUP BY profile_id",
            True,
        )
    )
    return {str(p): int(n) for p, n in store.query(query.sql, {**query.params, "ids": ids})}  # type: ignore[arg-type]


class HeldWriter:
    """Holds the store's writer thread before each write until `gate` is set, and after it until `after` is."""

    def __init__(self, store: DuckDBEventStore, monkeypatch: pytest.MonkeyPatch) -> None:
        self.gate = threading.Event()
        self.after = threading.Event()
        self.after.set()
        self.written = threading.Event()
        real = store._load

        def held(*args: Any) -> None:
            assert self.gate.wait(30)
            real(*args)
            self.written.set()
            assert self.after.wait(30)

        monkeypatch.setattr(store, "_load", held)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBEventStore]:
    store = DuckDBEventStore(tmp_path / "events.duckdb")
    store.load(to_table([identify(1, "ann", days_ago(30), country="PL"), order(2, "ann", days_ago(20), 5000)]), 2, [])
    yield store
    store.close()


def test_staged_events_are_read_before_they_are_written_and_counted_once(
    store: DuckDBEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = HeldWriter(store, monkeypatch)
    assert members(store, ["ann"]) == set()
    store.stage(to_table([order(3, "ann", days_ago(1), 7000), track(4, "bob", "Product Viewed", days_ago(1))]), 4, [])
    assert store.cursors()[0] == 2 and store.staged_cursors()[0] == 4  # not written yet
    assert members(store, ["ann"]) == {"ann"}  # the staged order makes her second
    assert order_counts(store, ["ann", "bob"]) == {"ann": 2}
    assert store.flush(timeout=0.2) is False
    # written but still in the staged list (the moment between the writer's commit and its taking the batch off
    # the list): the query's snapshot shows it written, so its staged rows no longer count
    held.after.clear()
    held.gate.set()
    assert held.written.wait(10)
    assert store.cursors()[0] == 4 and len(store._staged) == 1
    assert order_counts(store, ["ann"]) == {"ann": 2} and members(store, ["ann"]) == {"ann"}
    held.after.set()
    assert store.flush(timeout=10)
    assert store.cursors()[0] == 4 and order_counts(store, ["ann"]) == {"ann": 2}


def test_staged_batches_are_written_in_order_and_a_failed_write_is_retried(
    store: DuckDBEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = store._load
    failures = [RuntimeError("disk full")]

    def flaky(*args: Any) -> None:
        if failures:
            raise failures.pop()
        real(*args)

    monkeypatch.setattr(store, "_load", flaky)
    store.stage(to_table([order(3, "ann", days_ago(2), 1000)]), 3, [])
    store.stage(to_table([order(4, "cid", days_ago(2), 1000)]), 4, [])
    assert store.flush(timeout=10)
    assert store.write_error is None and store.cursors()[0] == 4
    assert order_counts(store, ["ann", "cid"]) == {"ann": 2, "cid": 1}
    # a direct load waits for the staged batches (journal order), identity changes too
    store.stage(to_table([order(5, "dan", days_ago(2), 1000)]), 5, [])
    store.load(to_table([order(6, "dan", days_ago(1), 1000)]), 6, [])
    assert store.query("SELECT journal_seq FROM events WHERE profile_id = 'dan' ORDER BY rowid") == [(5,), (6,)]


def test_profile_keys_stay_unique_when_a_hash_is_taken(store: DuckDBEventStore) -> None:
    # an id already holds bob's hash (as if two ids hashed alike): bob gets another key, recorded as a clash
    taken = store.query("SELECT hash('bob')")[0][0]  # ann is given bob's hash, as a clash would have given it
    store.query(f"UPDATE events SET profile_key = {taken} WHERE profile_id = 'ann'")
    store.query(f"UPDATE profile_keys SET profile_key = {taken} WHERE profile_id = 'ann'")
    store.query(f"INSERT INTO profile_key_clashes VALUES ('ann', {taken})")
    store.load(to_table([identify(3, "bob", days_ago(5), country="PL"), order(4, "bob", days_ago(4), 100)]), 4, [])
    clashes = dict(store.query("SELECT profile_id, profile_key FROM profile_key_clashes"))
    assert set(clashes) == {"ann", "bob"} and clashes["bob"] != taken
    keys = store.query("SELECT profile_key, count(DISTINCT profile_id) FROM events GROUP BY ALL")
    assert all(n == 1 for _k, n in keys)
    assert order_counts(store, ["ann", "bob"]) == {"ann": 1, "bob": 1}
    assert order_counts(store, ["bob"]) == {"bob": 1}


def test_identity_changes_and_erasure_keep_the_keys(store: DuckDBEventStore) -> None:
    store.load(to_table([order(3, "bob", days_ago(3), 100), order(4, "bob", days_ago(2), 100)]), 4, [])
    store.apply_changes([(1, "user_id:bob", "ann")])  # bob's identifier now belongs to ann: his events move
    assert order_counts(store, ["ann", "bob"]) == {"ann": 3}
    assert store.query("SELECT count(*) FROM events WHERE profile_key <> hash(profile_id)") == [(0,)]
    store.erase(["ann"], [])
    assert store.query("SELECT count(*) FROM profile_keys WHERE profile_id = 'ann'") == [(0,)]
    assert order_counts(store, ["ann"]) == {}


def test_a_file_from_before_the_keys_gets_them_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "events.duckdb"
    store = DuckDBEventStore(path)
    store.load(to_table([order(1, "ann", days_ago(3), 100), order(2, "bob", days_ago(2), 100)]), 2, [])
    store.query("DROP INDEX events_profile_id")  # (recreated on open)
    store.query("ALTER TABLE events DROP COLUMN profile_key")
    store.query("DROP TABLE profile_keys")
    store.close()
    store = DuckDBEventStore(path)
    assert store.query("SELECT count(*) FROM events WHERE profile_key = hash(profile_id)") == [(2,)]
    assert order_counts(store, ["ann", "bob"]) == {"ann": 1, "bob": 1}
    store.close()


def test_the_background_loop_evaluates_segments_before_the_slice_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The processor's loop stages each slice: the staged listener (segments) sees it at once, membership follows
    while the slice is still unwritten, and the other listeners hear of it only once it is written."""
    state = create_state_engine(f"sqlite:///{tmp_path / 'state.sqlite'}")
    migrate(state)
    store = DuckDBEventStore(tmp_path / "events.duckdb")
    store.load(to_table([identify(1, "ann", days_ago(30), country="PL"), order(2, "ann", days_ago(20), 5000)]), 2, [])
    engine = DuckDBEngine(store)
    service.apply_segment(state, engine, None, parse_documents(RULE, "segment")[0], NOW)
    runtime = SegmentRuntime(state, engine, Journal(state), lambda _s: [], lambda _p: [], clock=lambda: NOW)
    runtime._save_cursors(2, 0)
    held = HeldWriter(store, monkeypatch)
    slices = [to_table([order(3, "ann", days_ago(1), 7000)])]

    class Resolved:
        def resolve_after(self, journal_seq: int, _n: int, _m: int) -> Any:
            return (slices.pop(), 3) if slices and journal_seq == 2 else None

    class NoChanges:
        def changes_since(self, _seq: int) -> list[Any]:
            return []

        def last_change_seq(self) -> int:
            return 0

    heard: list[tuple[str, int, int]] = []
    processor = Processor(Journal(state), NoChanges(), store)  # type: ignore[arg-type]
    processor.resolver = Resolved()  # type: ignore[assignment]

    def on_staged(after: int, upto: int) -> None:
        runtime.on_events(after, upto)
        heard.append(("staged", upto, store.cursors()[0]))

    processor.add_listener(on_staged, staged=True)
    processor.add_listener(lambda _a, upto: heard.append(("written", upto, store.cursors()[0])))
    processor.start()
    try:
        deadline = time.monotonic() + 10
        while not heard and time.monotonic() < deadline:
            time.sleep(0.01)
        assert heard == [("staged", 3, 2)]  # evaluated while the slice was still unwritten
        assert service.member_ids(state, "repeat-store-buyers") == ["ann"]
        held.gate.set()
        while len(heard) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert heard[1] == ("written", 3, 3)
    finally:
        held.gate.set()
        processor.stop()
        store.close()
    changes = [c.change for c in service.membership_changes_since(state, 0, 10)]
    assert changes == ["entered"]
    assert members(DuckDBEventStore(tmp_path / "events.duckdb", read_only=True), ["ann"]) == {"ann"}


def test_trait_conditions_read_the_traits_table_not_the_payloads(store: DuckDBEventStore) -> None:
    """With the derived tables, trait conditions read `event_traits` (the identify events' traits), never the
    `raw` payload of the log: DuckDB decodes that text vector by vector, however few rows a query keeps."""
    rule = parse_documents(RULE, "segment")[0].rule
    for subset in (False, True):
        query = Vocabulary().compiler("duckdb", NOW, rollups=True, subset=subset).members_query(rule, subset)
        assert "event_traits" in query.sql
        assert "e.raw" not in query.sql  # the touched events' payloads are not fetched
        assert query.sql.count("raw") == query.sql.count("raw -> '$.traits' FROM staged_events")
    store.load(to_table([identify(3, "ann", days_ago(1), country="DK")]), 3, [])
    assert members(store, ["ann"]) == set()  # her newest country is DK
    store.stage(to_table([identify(4, "ann", days_ago(0.5), country="PL"), order(5, "ann", days_ago(0.5), 1)]), 5, [])
    assert members(store, ["ann"]) == {"ann"}  # the staged identify counts before it is written
    assert store.flush(timeout=10) and members(store, ["ann"]) == {"ann"}


def test_the_runtime_takes_only_the_identity_changes_the_event_store_has_taken(
    store: DuckDBEventStore, tmp_path: Path
) -> None:
    """A change resolved meanwhile (the next slice, resolving in the worker while this one is evaluated) waits for
    the slice that carries it to the event store: evaluated earlier, its moved events would not be moved yet."""
    state = create_state_engine(f"sqlite:///{tmp_path / 'state.sqlite'}")
    migrate(state)
    graph_changes = [(1, "user_id:bob", "ann"), (2, "user_id:cid", "ann")]
    runtime = SegmentRuntime(state, DuckDBEngine(store), None, lambda after: [c for c in graph_changes if c[0] > after],
                             lambda _p: [])  # fmt: skip
    assert runtime._changes(0) == []  # the store has taken none of them
    store.apply_changes(graph_changes[:1])
    assert runtime._changes(0) == graph_changes[:1]
    store.stage(to_table([order(3, "ann", days_ago(1), 100)]), 3, graph_changes[1:])
    assert runtime._changes(0) == graph_changes  # staged with its slice: taken
    assert store.flush(timeout=10)


def test_a_staged_write_that_keeps_failing_is_reported_and_kept(
    store: DuckDBEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = store._load
    healed = threading.Event()

    def failing(*args: Any) -> None:
        if not healed.is_set():
            raise OSError("No space left on device")
        real(*args)

    monkeypatch.setattr(store, "_load", failing)
    store.stage(to_table([order(3, "ann", days_ago(1), 100)]), 3, [])
    deadline = time.monotonic() + 10
    while store.write_error is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert store.write_error == "OSError: No space left on device"  # what /api/v1/stats reports
    assert store.cursors()[0] == 2 and order_counts(store, ["ann"]) == {"ann": 2}  # kept, still readable
    healed.set()
    assert store.flush(timeout=10) and store.write_error is None and store.cursors()[0] == 3
