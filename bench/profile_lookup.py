"""Profile reads on a large event log, with and without the ART index on events(profile_id).

Fills a DuckDB event store with N synthetic events spread over P profiles (in time order, profiles interleaved as
real traffic is), then measures through the event store's own methods: the profile summary and a timeline page
(what a profile page and the associate screen ask) for sampled profiles, 20,000-event loads and identity
changes applied to existing rows (medians of 5) -- each with the index and again after dropping it.

    .venv/bin/python bench/profile_lookup.py --events 4300000 --profiles 100000 --dir /tmp/profile-lookup
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from accord.storage.events import rollup
from accord.storage.events.base import EVENT_COLUMNS
from accord.storage.events.duckdb import PROFILE_INDEX, SCHEMA, DuckDBEventStore

CHANNELS = ["web", "app", "email", "sms", "store", "push"]
LOADS = 5  # 20,000-event loads and single identity changes timed per variant


def pid(i: int) -> str:
    return f"01JPROFILE{i:016d}"


def fill(path: Path, events: int, profiles: int) -> float:
    """The log without the index, by SQL (seconds taken)."""
    started = time.perf_counter()
    con = duckdb.connect(str(path))
    con.execute(SCHEMA.replace(PROFILE_INDEX, ""))
    con.execute(
        f"""
        INSERT INTO events (event_id, journal_seq, source_id, message_id, type, event, channel, timestamp,
                            received_at, anchor, profile_id, raw)
        SELECT printf('01JEVENT%018d', i), i, 'src', printf('m-%d', i), 'track',
               CASE i % 4 WHEN 0 THEN 'Order Completed' WHEN 1 THEN 'Product Viewed' ELSE 'Page Viewed' END,
               ['web', 'app', 'email', 'sms', 'store', 'push'][1 + (i % 6)],
               TIMESTAMPTZ '2024-01-01 00:00:00+00' + to_microseconds(i * 10000000),
               TIMESTAMPTZ '2024-01-01 00:00:00+00' + to_microseconds(i * 10000000),
               printf('user_id:u%d', hash(i) % {profiles}),
               printf('01JPROFILE%016d', hash(i) % {profiles}),
               printf('{{"type":"track","event":"Page Viewed","properties":{{"url":"https://shop.example/p/%d",'
                      '"product_id":"sku-%d","price":%d}},"context":{{"channel":"web"}}}}', i, i % 5000, i % 997)
        FROM range({events}) t(i)
        """
    )
    con.execute(rollup.DUCKDB_SCHEMA)  # the derived tables too, so that opening the store builds only the index
    con.execute(rollup.duckdb_append_days("events"))
    con.execute("INSERT INTO event_anchors " + rollup.duckdb_anchor_rows("events"))
    con.close()
    return time.perf_counter() - started


def timed(fn: Callable[[], Any], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


def batch(n: int, profiles: int, start: int) -> pa.Table:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    rows: dict[str, list[Any]] = {name: [] for name in EVENT_COLUMNS}
    for k in range(n):
        i = start + k
        values = {
            "event_id": f"01JNEW{i:020d}",
            "journal_seq": i,
            "source_id": "src",
            "message_id": f"n-{i}",
            "type": "track",
            "event": "Page Viewed",
            "channel": CHANNELS[i % 6],
            "timestamp": now + timedelta(milliseconds=k),
            "received_at": now + timedelta(milliseconds=k),
            "identifiers": [],
            "anchor": f"user_id:u{i % profiles}",
            "profile_id": pid(i % profiles),
            "raw": json.dumps({"type": "track", "event": "Page Viewed", "properties": {"url": f"/p/{i}"}}),
        }
        for name in EVENT_COLUMNS:
            rows[name].append(values.get(name))
    return pa.table({name: pa.array(rows[name], EVENT_COLUMNS[name]) for name in EVENT_COLUMNS})


def measure(store: DuckDBEventStore, sample: list[str], profiles: int, label: str, seq: int) -> dict[str, Any]:
    cpu = time.process_time()
    summary = [t for p in sample for t in timed(lambda p=p: store.profile_summary(p), 1)]
    timeline = [t for p in sample for t in timed(lambda p=p: store.timeline(p, 50, descending=True), 1)]
    loads = []
    for k in range(LOADS):
        rows = batch(20_000, profiles, seq + k * 20_000)
        loads.extend(timed(lambda rows=rows, k=k: store.load(rows, seq + k, []), 1))
    changes = []
    for k, pid_ in enumerate(sample[:LOADS]):
        anchor = f"user_id:u{int(pid_[-16:])}"
        changes.extend(timed(lambda a=anchor, k=k: store.apply_changes([(seq + k, a, f"01JMERGED{k:017d}")]), 1))
    load, change = statistics.median(loads), statistics.median(changes)
    return {
        "variant": label,
        "profile_summary_median_ms": round(statistics.median(summary), 2),
        "timeline_page_median_ms": round(statistics.median(timeline), 2),
        "load_20k_events_median_ms": round(load, 1),
        "apply_one_identity_change_median_ms": round(change, 1),
        "cpu_seconds": round(time.process_time() - cpu, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=4_300_000)
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/accord-profile-lookup"))
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    path = args.dir / "events.duckdb"
    for leftover in (path, path.with_suffix(".duckdb.wal")):
        leftover.unlink(missing_ok=True)
    filled = fill(path, args.events, args.profiles)
    print(f"filled {args.events:,} events over {args.profiles:,} profiles in {filled:.1f} s", file=sys.stderr)
    size_without = path.stat().st_size
    started = time.perf_counter()
    store = DuckDBEventStore(path)  # builds the index on the existing rows
    built = time.perf_counter() - started
    store.query("CHECKPOINT")
    size_with = path.stat().st_size
    sample = [pid(i) for i in random.Random(7).sample(range(args.profiles), args.samples)]
    results = [measure(store, sample, args.profiles, "with the index", 10**9)]
    store.query("DROP INDEX events_profile_id")
    results.append(measure(store, sample, args.profiles, "without (full scan)", 2 * 10**9))
    store.close()
    print(
        json.dumps(
            {
                "events": args.events,
                "profiles": args.profiles,
                "index_build_seconds": round(built, 1),
                "file_mb_without_index": round(size_without / 1e6),
                "file_mb_with_index": round(size_with / 1e6),
                "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
