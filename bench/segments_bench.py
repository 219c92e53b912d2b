"""Segment evaluation benchmark: a five-condition segment over N profiles / M events on DuckDB.

Compares the compiled segment with a hand-written DuckDB query for the same segment (the ceiling), and measures
incremental evaluation: the time to re-evaluate the profiles touched by one second of ingestion at a given rate,
both ways on the same batches: reading the touched profiles' events once (`subset`, the default) and the compiled
query restricted to them over the daily tables (`restricted`, the path before it).
Accord reads the daily tables (event_days, event_anchors) beside the log; the figures also give Accord reading
the log alone, and hand-written queries over the log and over the daily tables.

    .venv/bin/python bench/segments_bench.py --profiles 1000000 --events 20000000
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from accord.segments.compile import Vocabulary
from accord.segments.engines import DuckDBEngine
from accord.segments.rules import parse_documents
from accord.storage.events.duckdb import DuckDBEventStore

NOW = datetime(2026, 6, 1, 9, 30, tzinfo=UTC)  # not midnight: every window has partial days at its edge
DATA_END = datetime(2026, 6, 1, tzinfo=UTC)

SEGMENT = """
name: five-conditions
rule:
  all:
    - trait: country
      in: [PL, DK]
    - event: Order Completed
      channel: store
      within: 365d
      count: {gte: 2}
    - event: Product Viewed
      within: 30d
    - not:
        event: Order Completed
        within: 60d
    - computed: lifetime_revenue
      gte: 10000
"""

HAND_WRITTEN = """
WITH t AS (
  SELECT profile_id,
    arg_max(json_extract_string(raw, '$.traits.country'), (timestamp, event_id)) FILTER (WHERE type = 'identify')
      AS country,
    count(*) FILTER (WHERE event = 'Order Completed' AND channel = 'store' AND timestamp >= $y) AS store_orders,
    count(*) FILTER (WHERE event = 'Product Viewed' AND timestamp >= $m) AS views,
    count(*) FILTER (WHERE event = 'Order Completed' AND timestamp >= $r) AS recent_orders,
    coalesce(sum(revenue_minor) FILTER (WHERE event = 'Order Completed'), 0) AS revenue
  FROM events GROUP BY profile_id)
SELECT profile_id FROM t
WHERE country IN ('PL', 'DK') AND store_orders >= 2 AND views >= 1 AND recent_orders = 0 AND revenue >= 10000
"""

# The same segment over the derived tables, written by hand: the country from event_traits, one filtered
# sub-query per condition, whole days from event_days and the partial day at each window's edge from the events
# ($y/$m/$r the edges, $yd/$md/$rd the next midnights).
HAND_WRITTEN_DAILY = """
WITH c AS (
  SELECT profile_id, arg_max(json_extract_string(traits, '$.country'), (timestamp, event_id)) AS country
  FROM event_traits WHERE json_extract_string(traits, '$.country') IS NOT NULL
  GROUP BY profile_id),
so AS (SELECT profile_id, sum(n) AS n FROM (
    SELECT profile_id, events AS n FROM event_days WHERE event = 'Order Completed' AND channel = 'store' AND day >= $yd
    UNION ALL SELECT profile_id, 1 FROM events WHERE event = 'Order Completed' AND channel = 'store'
      AND timestamp >= $y AND timestamp < $yd) GROUP BY profile_id),
pv AS (SELECT DISTINCT profile_id FROM (
    SELECT profile_id FROM event_days WHERE event = 'Product Viewed' AND day >= $md
    UNION ALL SELECT profile_id FROM events WHERE event = 'Product Viewed' AND timestamp >= $m AND timestamp < $md)),
ro AS (SELECT DISTINCT profile_id FROM (
    SELECT profile_id FROM event_days WHERE event = 'Order Completed' AND day >= $rd
    UNION ALL SELECT profile_id FROM events WHERE event = 'Order Completed' AND timestamp >= $r AND timestamp < $rd)),
rev AS (SELECT profile_id, sum(revenue_minor) AS v FROM event_days WHERE event = 'Order Completed'
        GROUP BY profile_id)
SELECT c.profile_id FROM c JOIN so USING (profile_id) JOIN pv USING (profile_id) JOIN rev USING (profile_id)
WHERE c.country IN ('PL', 'DK') AND so.n >= 2 AND rev.v >= 10000
  AND c.profile_id NOT IN (SELECT profile_id FROM ro)
"""


# A track payload as an SDK sends it (~500 bytes: properties, context with user agent, page, library): the log keeps
# every message whole, and its size is what a read of `raw` costs (DuckDB decodes it vector by vector).
TRACK_RAW = (
    '\'{"type":"track","properties":{"product_id":"sku-\' || (h % 5000) || \'","name":"Product \' || '
    '(h % 99991) || \' with a descriptive title","price":\' || (h % 997) || \',"currency":"PLN","category":'
    '"Shoes/Running/\' || (h % 13) || \'"},"context":{"ip":"10.\' || (h % 255) || \'.\' || (i % 255) || '
    '\'.1","userAgent":"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.\' || '
    '(h % 4000) || \' Safari/537.36","page":{"url":"https://shop.example/p/\' || (h % 50000) || '
    '\'","referrer":"https://www.google.com/search?q=\' || (i % 100000) || \'"},"library":{"name":'
    '"analytics.js","version":"5.2.0"}},"messageId":"\' || md5(i::VARCHAR) || \'"}\''
)


def generate(store: DuckDBEventStore, profiles: int, events: int) -> float:
    """Synthetic events: one identify per profile (country trait), the rest tracks over two years."""
    started = time.perf_counter()
    with store._write_lock:  # the benchmark fills the table in place
        cur = store._cur()
        cur.execute(
            f"""
            INSERT INTO events
            SELECT 'e' || i, i, 'src', 'm' || i,
                   CASE WHEN i < {profiles} THEN 'identify' ELSE 'track' END,
                   CASE WHEN i < {profiles} THEN NULL
                        WHEN h % 20 < 2 THEN 'Order Completed' WHEN h % 20 < 11 THEN 'Product Viewed'
                        WHEN h % 20 < 14 THEN 'Product Added' ELSE 'Page Viewed' END,
                   NULL,
                   ['web', 'app', 'store', 'email'][1 + (h // 20) % 4],
                   TIMESTAMPTZ '2026-06-01 00:00:00+00' - to_seconds((h // 80) % (730 * 86400)),
                   TIMESTAMPTZ '2026-06-01 00:00:00+00' - to_seconds((h // 80) % (730 * 86400)),
                   NULL, NULL, 'u' || pid, NULL, ['user_id:u' || pid], 'user_id:u' || pid, 'p' || pid,
                   CASE WHEN i >= {profiles} AND h % 20 < 2 THEN 1000 + (h // 7) % 20000 END,
                   CASE WHEN i >= {profiles} AND h % 20 < 2 THEN 'PLN' END,
                   NULL, NULL, NULL, NULL, NULL,
                   CASE WHEN i < {profiles}
                        THEN '{{"type":"identify","traits":{{"country":"' ||
                             ['PL', 'DK', 'GB', 'RU', 'KZ', 'CN'][1 + pid % 6] || '"}}}}'
                        ELSE {TRACK_RAW} END,
                   NULL  -- profile_key: the store keys the events when it opens the file (storage/events/keys.py)
            FROM (SELECT i, (hash(i) % 1000000000000)::BIGINT AS h,
                         CASE WHEN i < {profiles} THEN i ELSE (hash(i * 7) % {profiles})::BIGINT END AS pid
                  FROM range({events}) AS r(i))
            """
        )
        cur.execute("CHECKPOINT")
        cur.close()
    return time.perf_counter() - started


def cpu() -> float:
    """CPU seconds of this process so far (all threads)."""
    return time.process_time()


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def end_to_end(
    store: DuckDBEventStore, profiles: int, rate: int, batches: int, directory: Path, modes: list[str]
) -> dict[str, float]:
    """Load one second of events (RATE) at a time and run the incremental evaluator on it, state store included.

    Latency per batch = loading the batch into DuckDB + finding the touched profiles + re-evaluating them + writing
    membership, feed, sizes and Segment Entered/Exited events (SQLite state store, one transaction). MODES
    (subset, restricted) take turns batch by batch on the same runtime, so both see the same log and load.
    """
    from accord.collect.journal import Journal
    from accord.segments import service
    from accord.segments.runtime import SegmentRuntime
    from accord.storage import create_state_engine, migrate

    state = create_state_engine(f"sqlite:///{directory / 'bench-state.sqlite'}")
    migrate(state)
    engine = DuckDBEngine(store)
    definition = parse_documents(SEGMENT, "segment")[0]
    started = time.perf_counter()
    service.apply_segment(state, engine, None, definition, NOW)
    apply_s = time.perf_counter() - started
    runtime = SegmentRuntime(state, engine, Journal(state), lambda _seq: [], lambda _pid: [], clock=lambda: NOW)
    seq = int(store.query("SELECT max(journal_seq) FROM events")[0][0])
    runtime._save_cursors(seq, 0)  # the full evaluation above covered everything so far
    rng = random.Random(11)
    latencies: dict[str, list[float]] = {m: [] for m in modes}
    loads: dict[str, list[float]] = {m: [] for m in modes}
    cpus: dict[str, float] = dict.fromkeys(modes, 0.0)
    for b in range(batches * len(modes)):
        import pyarrow as pa

        from accord.storage.events.base import EVENT_COLUMNS

        mode = modes[b % len(modes)]
        engine.subset = mode == "subset"
        rows = []
        for k in range(rate):
            pid = rng.randrange(profiles)
            order = rng.random() < 0.3
            at = DATA_END - timedelta(seconds=rng.randrange(3 * 86400))
            rows.append({c: None for c in EVENT_COLUMNS} | {
                "event_id": f"b{b}-{k}", "journal_seq": seq + 1, "type": "track", "channel": "store",
                "event": "Order Completed" if order else "Product Viewed", "timestamp": at, "received_at": at,
                "anchor": f"user_id:u{pid}", "profile_id": f"p{pid}", "identifiers": [f"user_id:u{pid}"],
                "revenue_minor": 5000 if order else None, "raw": '{"type":"track"}',
            })  # fmt: skip
        table = pa.table({c: pa.array([r[c] for r in rows], t) for c, t in EVENT_COLUMNS.items()})
        started, cpu_started = time.perf_counter(), cpu()
        store.load(table, seq + 1, [])
        loads[mode].append(time.perf_counter() - started)
        runtime.on_events(seq, seq + 1)
        latencies[mode].append(time.perf_counter() - started)
        cpus[mode] += cpu() - cpu_started
        seq += 1
    out: dict[str, float] = {"apply_full_with_state_s": round(apply_s, 2), "e2e_batches": batches}
    for mode in modes:
        out |= {
            f"e2e_{mode}_median_s": round(statistics.median(latencies[mode]), 3),
            f"e2e_{mode}_p99_s": round(_p99(latencies[mode]), 3),
            f"e2e_{mode}_max_s": round(max(latencies[mode]), 3),
            f"e2e_{mode}_load_median_s": round(statistics.median(loads[mode]), 3),
            f"e2e_{mode}_cpu_s_per_batch": round(cpus[mode] / batches, 3),
        }
    return out


def timed(fn: object, runs: int) -> tuple[float, float, object]:
    """(median wall seconds, median CPU seconds, result)."""
    times, cpus, result = [], [], None
    for _ in range(runs):
        started, cpu_started = time.perf_counter(), cpu()
        result = fn()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
        cpus.append(cpu() - cpu_started)
    return statistics.median(times), statistics.median(cpus), result


def full_comparison(store: DuckDBEventStore, engine: DuckDBEngine, runs: int) -> dict[str, float]:
    """Full evaluation: Accord from the daily tables and from the log, and the hand-written queries (same members)."""
    definition = parse_documents(SEGMENT, "segment")[0]
    compiled = Vocabulary().compiler("duckdb", NOW, rollups=True).members_query(definition.rule)
    accord_s, accord_cpu, accord_rows = timed(lambda: engine.rows(compiled), runs)
    raw_compiled = Vocabulary().compiler("duckdb", NOW).members_query(definition.rule)
    raw_s, raw_cpu, raw_rows = timed(lambda: engine.rows(raw_compiled), runs)
    day = timedelta(days=1)
    edges = {"y": NOW - timedelta(days=365), "m": NOW - timedelta(days=30), "r": NOW - timedelta(days=60)}
    hand_params = {**edges, **{k + "d": v.replace(hour=0, minute=0) + day for k, v in edges.items()}}
    hand_s, hand_cpu, hand_rows = timed(
        lambda: store.query(HAND_WRITTEN, {k: hand_params[k] for k in edges}),  # type: ignore[arg-type]
        runs,
    )
    daily_s, daily_cpu, daily_rows = timed(lambda: store.query(HAND_WRITTEN_DAILY, hand_params), runs)  # type: ignore[arg-type]
    members = sorted(accord_rows)  # type: ignore[arg-type]
    for other in (raw_rows, hand_rows, daily_rows):
        assert sorted(other) == members, "the compiled and hand-written queries disagree"  # type: ignore[arg-type]

    return {
        "members": len(members),
        "accord_full_median_s": round(accord_s, 3),
        "accord_full_cpu_s": round(accord_cpu, 3),
        "hand_written_daily_median_s": round(daily_s, 3),
        "hand_written_daily_cpu_s": round(daily_cpu, 3),
        "ratio_to_hand_written_daily": round(accord_s / daily_s, 2),
        "accord_full_from_events_median_s": round(raw_s, 3),
        "accord_full_from_events_cpu_s": round(raw_cpu, 3),
        "hand_written_events_median_s": round(hand_s, 3),
        "hand_written_events_cpu_s": round(hand_cpu, 3),
        "ratio_to_hand_written_events": round(accord_s / hand_s, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=20_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rate", type=int, default=20_000, help="ingestion rate (events/s) for the incremental part")
    parser.add_argument("--batches", type=int, default=20, help="one-second batches measured for incremental p99")
    parser.add_argument("--e2e", type=int, default=0, help="also run N end-to-end incremental batches (state store)")
    parser.add_argument(
        "--e2e-modes", default="subset,restricted", help="incremental paths the end-to-end batches take turns with"
    )
    parser.add_argument("--skip-full", action="store_true", help="skip the full-evaluation comparison")
    parser.add_argument("--dir", type=Path, default=None, help="where the DuckDB file goes (default: a temp dir)")
    args = parser.parse_args()

    directory = args.dir or Path(tempfile.mkdtemp(prefix="accord-seg-bench-"))
    path = directory / f"events-{args.profiles}-{args.events}.duckdb"
    fresh = not path.exists()
    started = time.perf_counter()
    store = DuckDBEventStore(path)  # builds the daily tables of a file from before they existed
    opened = time.perf_counter() - started
    generated = generate(store, args.profiles, args.events) if fresh else 0.0
    rebuild = 0.0
    if fresh:
        started = time.perf_counter()
        store.rebuild_rollups()
        rebuild = time.perf_counter() - started
    engine = DuckDBEngine(store)
    assert engine.rollups

    definition = parse_documents(SEGMENT, "segment")[0]
    full = {} if args.skip_full else full_comparison(store, engine, args.runs)
    print(json.dumps({"profiles": args.profiles, "events": args.events, **full}), flush=True)

    # incremental: the profiles touched by one second of ingestion at RATE events/s, re-evaluated alone, both ways
    # on the same profiles (taking turns: the first of each pair alternates)
    queries = {
        "subset": Vocabulary().compiler("duckdb", NOW, rollups=True, subset=True).members_query(definition.rule, True),
        "restricted": Vocabulary().compiler("duckdb", NOW, rollups=True).members_query(definition.rule, True),
    }
    rng = random.Random(7)
    latencies: dict[str, list[float]] = {m: [] for m in queries}
    cpus: dict[str, float] = dict.fromkeys(queries, 0.0)
    touched_events: list[int] = []
    for b in range(args.batches):
        touched = sorted({f"p{rng.randrange(args.profiles)}" for _ in range(args.rate)})
        found = {}
        for mode in list(queries)[:: 1 if b % 2 == 0 else -1]:
            queries[mode].params["ids"] = touched
            started, cpu_started = time.perf_counter(), cpu()
            found[mode] = sorted(engine.rows(queries[mode]))
            latencies[mode].append(time.perf_counter() - started)
            cpus[mode] += cpu() - cpu_started
        assert found["subset"] == found["restricted"], "subset and restricted incremental queries disagree"
        if b == 0:
            touched_events.append(int(store.query(
                "SELECT count(*) FROM events WHERE profile_id IN (SELECT unnest($ids))", {"ids": touched}  # type: ignore[arg-type]
            )[0][0]))  # fmt: skip
    result = {
        "profiles": args.profiles,
        "events": args.events,
        "event_days_rows": int(store.query("SELECT count(*) FROM event_days")[0][0]),
        "generate_s": round(generated, 1),
        "rebuild_daily_tables_s": round(rebuild or opened, 1),
        **full,
        "incremental_batch_events": args.rate,
        "incremental_touched_profiles": len(touched),
        "incremental_touched_profiles_events": touched_events[0],
        **{
            k: v
            for mode in queries
            for k, v in {
                f"incremental_{mode}_median_s": round(statistics.median(latencies[mode]), 3),
                f"incremental_{mode}_p99_s": round(_p99(latencies[mode]), 3),
                f"incremental_{mode}_cpu_s_per_batch": round(cpus[mode] / args.batches, 3),
            }.items()
        },
        "runs": args.runs,
        "machine": f"{platform.machine()} {platform.processor() or ''} python {platform.python_version()}".strip(),
        "loadavg": Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else None,
    }
    if args.e2e:
        result.update(end_to_end(store, args.profiles, args.rate, args.e2e, directory, args.e2e_modes.split(",")))
    print(json.dumps(result, indent=2))
    store.close()


if __name__ == "__main__":
    main()
