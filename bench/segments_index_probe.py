"""Access paths for "the events of 20,000 profiles" in the DuckDB event store (what incremental segments need).

Reads a file made by bench/segments_bench.py (read-only) and times, in CPU and wall seconds:
- one profile through the ART index on events(profile_id), and N such lookups one query each;
- a join with 50 ids (small enough for DuckDB to turn into an index scan) and with N ids after raising
  `dynamic_or_filter_threshold` (the setting that makes a hash join push its keys down as OR filters);
- the semi-join scan `profile_id IN (SELECT unnest($ids))` reading only profile_id, and reading the columns a segment
  uses (what the incremental subset query does).

    .venv/bin/python bench/segments_index_probe.py --file /tmp/segbench/events-1000000-20000000.duckdb
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

import duckdb

COLUMNS = "event_id, type, event, channel, timestamp, profile_id, revenue_minor, raw, anchor"


def timed(fn: Callable[[], Any], runs: int) -> dict[str, float]:
    """Median wall and CPU seconds of RUNS calls."""
    walls, cpus = [], []
    for _ in range(runs):
        started, cpu_started = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - started)
        cpus.append(time.process_time() - cpu_started)
    return {"wall_s": round(statistics.median(walls), 3), "cpu_s": round(statistics.median(cpus), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--file", required=True)
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--ids", type=int, default=20_000, help="profiles touched by one second of ingestion")
    parser.add_argument("--lookups", type=int, default=1_000, help="one-profile queries timed (then scaled)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    con = duckdb.connect(args.file, read_only=True)
    con.execute("SET TimeZone = 'UTC'")
    rng = random.Random(7)
    ids = sorted({f"p{rng.randrange(args.profiles)}" for _ in range(args.ids)})
    out: dict[str, Any] = {"file": args.file, "ids": len(ids)}

    def rows(sql: str, params: Any = None) -> list[Any]:
        return con.execute(sql, params or []).fetchall()

    out["one_profile_index"] = timed(lambda: rows("SELECT count(*) FROM events WHERE profile_id = ?", [ids[0]]), 5)
    lookups = timed(
        lambda: [rows(f"SELECT {COLUMNS} FROM events WHERE profile_id = ?", [pid]) for pid in ids[: args.lookups]], 1
    )
    out[f"{args.lookups}_one_profile_queries"] = lookups
    out["per_profile_lookup_cpu_ms"] = round(lookups["cpu_s"] / args.lookups * 1000, 3)
    join = "SELECT count(*), max(length(raw)) FROM events JOIN (SELECT unnest($ids) AS p) AS t ON profile_id = t.p"
    out["join_50_ids_index_scan"] = timed(lambda: rows(join, {"ids": ids[:50]}), args.runs)
    out["semi_join_profile_id_only"] = timed(
        lambda: rows("SELECT count(*) FROM events WHERE profile_id IN (SELECT unnest($ids))", {"ids": ids}), args.runs
    )
    extract = (
        f"CREATE OR REPLACE TEMP TABLE touched AS SELECT {COLUMNS} FROM events "
        "WHERE profile_id IN (SELECT unnest($ids))"
    )
    out["semi_join_segment_columns"] = timed(lambda: con.execute(extract, {"ids": ids}), args.runs)
    out["touched_events"] = int(rows("SELECT count(*) FROM touched")[0][0])
    con.execute("SET dynamic_or_filter_threshold = 100000")
    out[f"join_{len(ids)}_ids_or_filter_pushdown"] = timed(lambda: rows(join, {"ids": ids}), 1)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
