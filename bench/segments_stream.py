"""Event-to-membership latency under a steady stream: N events/s for S seconds into the real processor loop.

A producer releases events at RATE per second (a journal entry of --entry events every 1/(RATE/entry) s), each
with the time it arrived. The processor's background loop (accord.collect.processor.Processor, unchanged) takes
every entry that has arrived (at most 20,000 events a slice, as in the server), hands the slice to the event
store, and calls the segment runtime (accord.segments.runtime.SegmentRuntime) on it: in `staged` mode the slice is
staged (the store's writer thread writes it meanwhile) and membership is evaluated at once from the stored and
staged events; in `written` mode (the path before staging) the slice is written first. Latency of an event = the
time the runtime finished the slice that holds it (membership, feed, sizes and Segment Entered/Exited written to
the SQLite state store) minus the time it arrived; the figures are over every event of the run after the first
two seconds (warm-up). Identity resolution is not in this loop (the slices come resolved; see
bench/identity_throughput.py for that stage); everything after it is.

    .venv/bin/python bench/segments_stream.py --file /tmp/segbench/events-1000000-20000000.duckdb --seconds 30
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from accord.collect.journal import Journal
from accord.collect.processor import Processor
from accord.segments import service
from accord.segments.engines import DuckDBEngine
from accord.segments.rules import parse_documents
from accord.segments.runtime import SegmentRuntime
from accord.storage import create_state_engine, migrate
from accord.storage.events.base import EVENT_COLUMNS
from accord.storage.events.duckdb import DuckDBEventStore
from segments_bench import DATA_END, NOW, SEGMENT

# a track payload as an SDK sends it (~500 bytes), as in segments_bench.py's log
PAYLOAD = (
    '{{"type":"track","properties":{{"product_id":"sku-{k}","name":"Product {p} with a descriptive title",'
    '"price":160,"currency":"PLN","category":"Shoes/Running/5"}},"context":{{"ip":"10.44.105.1","userAgent":'
    '"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.1769 Safari/537.36",'
    '"page":{{"url":"https://shop.example/p/{p}","referrer":"https://www.google.com/search?q={n}"}},"library":'
    '{{"name":"analytics.js","version":"5.2.0"}}}},"messageId":"m-{n}-{k}"}}'
)


def entries(profiles: int, count: int, size: int, first_seq: int, seed: int) -> list[pa.Table]:
    """COUNT journal entries of SIZE resolved events each (30% store orders, the rest product views)."""
    rng = random.Random(seed)
    out = []
    for n in range(count):
        seq = first_seq + n
        pids = [rng.randrange(profiles) for _ in range(size)]
        orders = [rng.random() < 0.3 for _ in range(size)]
        ats = [DATA_END - timedelta(seconds=rng.randrange(3 * 86400)) for _ in range(size)]
        columns: dict[str, Any] = {c: [None] * size for c in EVENT_COLUMNS}
        columns |= {
            "event_id": [f"s{seq}-{k}" for k in range(size)],
            "journal_seq": [seq] * size,
            "type": ["track"] * size,
            "channel": ["store"] * size,
            "event": ["Order Completed" if o else "Product Viewed" for o in orders],
            "timestamp": ats,
            "received_at": ats,
            "anchor": [f"user_id:u{p}" for p in pids],
            "profile_id": [f"p{p}" for p in pids],
            "identifiers": [[f"user_id:u{p}"] for p in pids],
            "revenue_minor": [5000 if o else None for o in orders],
            "raw": [PAYLOAD.format(n=n, k=k, p=p) for k, p in enumerate(pids)],
        }
        out.append(pa.table({c: pa.array(columns[c], t) for c, t in EVENT_COLUMNS.items()}))
    return out


class Stream:
    """The producer and the resolver stand-in: entries become available at their release time."""

    def __init__(self, tables: list[pa.Table], first_seq: int, interval: float, cap: int) -> None:
        self.tables = tables
        self.first_seq = first_seq
        self.interval = interval
        self.cap = cap
        self.released: list[float] = []  # release time of each entry
        self.lock = threading.Lock()

    def produce(self, started: float) -> None:
        for n in range(len(self.tables)):
            due = started + n * self.interval
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            with self.lock:
                self.released.append(time.perf_counter())

    def resolve_after(self, journal_seq: int, _batch_size: int, _batch_messages: int) -> tuple[pa.Table, int] | None:
        with self.lock:
            available = len(self.released)
        start = journal_seq - self.first_seq + 1
        if start >= available:
            return None
        end, rows = start, 0
        while end < available and rows + self.tables[end].num_rows <= self.cap:
            rows += self.tables[end].num_rows
            end += 1
        return pa.concat_tables(self.tables[start:end]), self.first_seq + end - 1


class NoIdentity:
    """The identity graph stand-in: no merges in this stream."""

    def changes_since(self, _seq: int) -> list[tuple[int, str, str]]:
        return []

    def last_change_seq(self) -> int:
        return 0


def run(args: argparse.Namespace, mode: str, path: Path, work: Path, compact_after: int) -> dict[str, Any]:
    store = DuckDBEventStore(path)
    store.compact_rollups()  # a file written before compaction existed has every derived row fresh
    store.compact_after_rows = compact_after or 10**15  # 0: never
    if args.compact_ratio is not None:
        store.compact_ratio = args.compact_ratio
    derived_before = _derived_rows(store)
    compactions: list[float] = []
    compact = store.compact_rollups

    def timed_compact(tables: Any = None) -> None:
        began = time.perf_counter()
        compact(tables)
        compactions.append(time.perf_counter() - began)

    store.compact_rollups = timed_compact  # type: ignore[method-assign]
    state = create_state_engine(f"sqlite:///{work / f'state-{mode}.sqlite'}")
    migrate(state)
    engine = DuckDBEngine(store)
    definition = parse_documents(SEGMENT, "segment")[0]
    service.apply_segment(state, engine, None, definition, NOW)
    first_seq = int(store.cursors()[0]) + 1
    runtime = SegmentRuntime(state, engine, Journal(state), lambda _s: [], lambda _p: [], clock=lambda: NOW)
    runtime._save_cursors(first_seq - 1, 0)
    count = int(args.seconds * args.rate / args.entry)
    stream = Stream(
        entries(args.profiles, count, args.entry, first_seq, args.seed), first_seq, args.entry / args.rate, 20_000
    )
    done: list[tuple[float, int]] = []  # (time the runtime finished, journal seq it covered up to)

    evaluations: list[tuple[float, float, int, int]] = []  # (start, seconds, journal entries, staged batches)
    writes: list[tuple[float, float]] = []  # (start, seconds) of each write of the store's writer
    if args.verbose:
        write = store._load

        def timed_write(*a: Any) -> None:
            began = time.perf_counter()
            write(*a)
            writes.append((began - started, time.perf_counter() - began))

        store._load = timed_write  # type: ignore[method-assign]

    def listener(after: int, upto: int) -> None:
        began = time.perf_counter()
        runtime.on_events(after, upto)
        done.append((time.perf_counter(), upto))
        evaluations.append((began - started, done[-1][0] - began, upto - after, len(store._staged)))

    processor = Processor(Journal(state), NoIdentity(), store, batch_messages=20_000)  # type: ignore[arg-type]
    processor.resolver = stream  # type: ignore[assignment]
    processor.add_listener(listener, staged=mode == "staged")
    if mode == "written":
        processor.events = _Unstaged(store)  # type: ignore[assignment]
    cpu_started = time.process_time()
    started = time.perf_counter() + 0.2
    processor.start()
    producer = threading.Thread(target=stream.produce, args=(started,))
    producer.start()
    producer.join()
    deadline = time.perf_counter() + 120
    while (not done or done[-1][1] < first_seq + count - 1) and time.perf_counter() < deadline:
        time.sleep(0.01)
    ended = time.perf_counter()
    processor.stop()
    store.flush()
    cpu = time.process_time() - cpu_started
    latencies: list[float] = []
    i = 0
    for n, released in enumerate(stream.released):
        while i < len(done) and done[i][1] < first_seq + n:
            i += 1
        if i == len(done):
            break
        if released - started >= args.warmup:
            latencies.extend([done[i][0] - released] * args.entry)
    if args.verbose:
        for began, took in writes:
            print(f"  write at {began:7.2f}s took {took:.3f}s")
        for began, took, covered, staged in evaluations:
            print(f"  slice at {began:7.2f}s: {covered * args.entry:6d} events, evaluated in {took:.3f}s, "
                  f"{staged} staged", flush=True)  # fmt: skip
    latencies.sort()
    slices = len(done)
    derived_after = _derived_rows(store)
    full_eval = []
    for _ in range(3):  # the full evaluation of the segment over the tables the stream left
        began = time.perf_counter()
        service.compute_members(state, engine, definition, NOW)
        full_eval.append(time.perf_counter() - began)
    store.close()
    return {
        "mode": mode,
        "compact_after_rows": compact_after,
        "compact_ratio": store.compact_ratio,
        "compactions": len(compactions),
        "compaction_median_s": round(statistics.median(compactions), 3) if compactions else None,
        "compaction_max_s": round(max(compactions), 3) if compactions else None,
        "event_days_rows_added": derived_after[0] - derived_before[0],
        "event_anchors_rows_added": derived_after[1] - derived_before[1],
        "full_evaluation_after_s": round(statistics.median(full_eval), 3),
        "events": count * args.entry,
        "events_measured": len(latencies),
        "slices": slices,
        "events_per_slice": round(count * args.entry / max(slices, 1)),
        "latency_median_s": round(statistics.median(latencies), 3),
        "latency_p99_s": round(latencies[int(0.99 * (len(latencies) - 1))], 3),
        "latency_max_s": round(latencies[-1], 3),
        "caught_up_after_s": round(ended - stream.released[-1], 3),
        "throughput_events_s": round(count * args.entry / (ended - started)),
        "cpu_s_per_second_of_events": round(cpu / args.seconds, 2),
    }


def _derived_rows(store: DuckDBEventStore) -> tuple[int, int]:
    rows = store.query("SELECT (SELECT count(*) FROM event_days), (SELECT count(*) FROM event_anchors)")[0]
    return int(rows[0]), int(rows[1])


class _Unstaged:
    """The event store with staging turned off (every slice written before the listeners run)."""

    def __init__(self, store: DuckDBEventStore) -> None:
        self._store = store

    def stage(self, batch: pa.Table, journal_seq: int, changes: list[tuple[int, str, str]]) -> None:
        self._store.load(batch, journal_seq, changes)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--file", type=Path, required=True, help="a DuckDB file made by segments_bench.py")
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--rate", type=int, default=20_000, help="events per second")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--entry", type=int, default=200, help="events per journal entry (one intake request)")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--modes", default="staged,written")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument(
        "--compact-after",
        default=str(DuckDBEventStore.compact_after_rows),
        help="fresh derived rows after which the store compacts them, comma-separated to compare; 0: never",
    )
    parser.add_argument("--compact-ratio", type=float, default=None, help="the store's compact_ratio (default: kept)")
    parser.add_argument("--verbose", action="store_true", help="print every slice's evaluation time")
    args = parser.parse_args()
    results = []
    for mode in args.modes.split(","):
        for compact_after in (int(v) for v in args.compact_after.split(",")):
            work = Path(tempfile.mkdtemp(prefix="accord-stream-"))
            path = work / "events.duckdb"
            shutil.copyfile(args.file, path)  # every run starts from the same log
            try:
                results.append(run(args, mode, path, work, compact_after))
            finally:
                shutil.rmtree(work, ignore_errors=True)
            print(json.dumps(results[-1]), flush=True)
    print(
        json.dumps(
            {
                "rate": args.rate,
                "seconds": args.seconds,
                "results": results,
                "machine": f"{platform.machine()} python {platform.python_version()}",
                "loadavg": Path("/proc/loadavg").read_text().split()[:3],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
