"""Probabilistic identity matching: accuracy on a loaded demo, and time at scale on synthetic profiles.

Demo mode copies a home where `accord demo load` ran (state.sqlite + events.duckdb), runs `run_match` on the copy
(REPEAT times, a fresh copy each) and prints seconds and pairwise precision/recall/F1 against truth.csv, for the
records (customer_id identifiers: CRM and legacy rows) and for every identifier, before and after:

    .venv/bin/python bench/identity_match.py demo --home HOME --demo DEMO_DIR --repeat 3

Tune mode chooses --merge-above on a held-out demo (generated with another seed than the one reported): each
candidate threshold is run on a fresh copy; the highest one whose automatic F1 on the records is within 0.005 of
the best wins (F1 is flat over a wide range, and a higher threshold is the more cautious choice):

    .venv/bin/python bench/identity_match.py tune --home HOME_VALIDATION --demo DEMO_VALIDATION

Scale mode writes N synthetic profiles straight into a fresh state store and event store in bulk (identify events
with name, birth date, address, postcode, city; a share of them noisy duplicates that share no identifier), then
times one full run_match over them plus the event store's identity sync (the setup is timed apart):

    .venv/bin/python bench/identity_match.py scale --profiles 1000000
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from random import Random
from typing import Any

import pyarrow as pa

from accord.config import load_settings
from accord.demo.legacy import typo
from accord.identity import queries
from accord.identity import tables as t
from accord.identity.evaluate import pairwise_score
from accord.identity.matching import MatchOptions, ReviewClosed, decide_review, reviews, run_match
from accord.platform import open_platform
from accord.storage.events.base import EVENT_COLUMNS


def _truth(path: Path, records_only: bool) -> dict[str, str]:
    with path.open(newline="", encoding="utf-8") as handle:
        return {
            f"{r['identifier_type']}:{r['identifier_value']}": r["entity"]
            for r in csv.DictReader(handle)
            if not records_only or r["identifier_type"] == "customer_id"
        }


def _fmt(score: Any) -> dict[str, float]:
    return {"precision": round(score.precision, 4), "recall": round(score.recall, 4), "f1": round(score.f1, 4)}


def demo(args: argparse.Namespace) -> dict[str, Any]:
    records, everything = _truth(args.demo / "truth.csv", True), _truth(args.demo / "truth.csv", False)
    runs: list[dict[str, Any]] = []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="accord-match-") as tmp:
            home = Path(tmp)
            for name in ("state.sqlite", "events.duckdb"):
                shutil.copy(args.home / name, home / name)
            platform = open_platform(load_settings({"ACCORD_HOME": str(home), "ACCORD_ADMIN_TOKEN": "x"}))
            try:
                before = queries.grouping(platform.state)
                cpu, started = time.process_time(), time.perf_counter()
                report = run_match(platform.graph, platform.events, MatchOptions(args.merge_above, args.review_above))
                seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
                platform.processor.sync_identity()
                after = queries.grouping(platform.state)
                reviewed = _work_the_queue(platform, everything) if args.review_oracle else None
            finally:
                platform.close()
        runs.append(
            {
                "seconds": round(seconds, 2),
                "cpu_seconds": round(cpu, 2),
                "report": report.as_dict(),
                "records_before": _fmt(pairwise_score(before, records)),
                "records_after": _fmt(pairwise_score(after, records)),
                "all_before": _fmt(pairwise_score(before, everything)),
                "all_after": _fmt(pairwise_score(after, everything)),
            }
        )
        if reviewed is not None:
            runs[-1]["records_after_review"] = _fmt(pairwise_score(reviewed, records))
            runs[-1]["all_after_review"] = _fmt(pairwise_score(reviewed, everything))
        print(json.dumps(runs[-1]), file=sys.stderr)
    return {
        "median_seconds": statistics.median(r["seconds"] for r in runs),
        "runs": len(runs),
        "last": runs[-1],
    }


def tune(args: argparse.Namespace) -> dict[str, Any]:
    """Choose --merge-above on a held-out demo (another seed than the one reported): the highest threshold whose
    automatic pairwise F1 on the records is within --tolerance of the best, each candidate run on a fresh copy."""
    records = _truth(args.demo / "truth.csv", True)
    table = []
    for threshold in args.candidates:
        with tempfile.TemporaryDirectory(prefix="accord-match-") as tmp:
            home = Path(tmp)
            for name in ("state.sqlite", "events.duckdb"):
                shutil.copy(args.home / name, home / name)
            platform = open_platform(load_settings({"ACCORD_HOME": str(home), "ACCORD_ADMIN_TOKEN": "x"}))
            try:
                report = run_match(platform.graph, platform.events, MatchOptions(threshold, args.review_above))
                platform.processor.sync_identity()
                score = _fmt(pairwise_score(queries.grouping(platform.state), records))
            finally:
                platform.close()
        table.append({"merge_above": threshold, **score, "merged": report.merged, "queued": report.queued})
        print(json.dumps(table[-1]), file=sys.stderr)
    best = max(row["f1"] for row in table)
    # the most cautious threshold whose F1 is within TOLERANCE of the best (F1 is flat over a wide range)
    chosen = max(row["merge_above"] for row in table if row["f1"] >= best - args.tolerance)
    return {"chosen_merge_above": chosen, "best_f1": best, "tolerance": args.tolerance, "candidates": table}


def _work_the_queue(platform: Any, truth: dict[str, str]) -> dict[str, str]:
    """Decide every open review as an associate who knows the truth would (accept when the two anchor
    identifiers are one person), then return the grouping: what the run leads to once the queue is worked."""
    for review in reviews(platform.state, "open", limit=1_000_000):
        a, b = truth.get(review["identifier_a"]), truth.get(review["identifier_b"])
        with contextlib.suppress(ReviewClosed):  # the rules refuse the merge (two user ids): it stays open
            decide_review(platform.graph, review["id"], a is not None and a == b)
    platform.processor.sync_identity()
    return queries.grouping(platform.state)


_FIRST = [
    "anna", "maria", "katarzyna", "jan", "piotr", "tomasz", "paul", "sarah", "oliver", "emma", "mette", "lars",
    "olga", "ivan", "dmitri", "wei", "li", "fang", "aigerim", "nurlan", "george", "amelia", "jakub", "zofia",
]  # fmt: skip
_STAMP = "2026-11-01 00:00:00.000000"  # how SQLAlchemy's DateTime stores a UTC time in SQLite
_NOW = datetime(2026, 11, 1, tzinfo=UTC)


def _names(rng: Random, n: int, parts: int) -> list[str]:
    letters = "abcdefghijklmnoprstuwyz"
    vowels = "aeiouy"
    return ["".join(rng.choice(letters) + rng.choice(vowels) for _ in range(parts)).capitalize() for _ in range(n)]


def synthetic_people(profiles: int, duplicates: float, seed: int = 7) -> tuple[list[dict[str, Any]], list[int]]:
    """PROFILES trait dicts and the person each belongs to: people drawn from name, street and city pools, and
    DUPLICATES noisy copies per person (name typos 30 %/20 %, a new address in 35 %, no birth date in 10 %)."""
    rng = Random(seed)
    firsts = _FIRST + _names(rng, 3000, 3)
    lasts = _names(rng, 40_000, 4)
    streets = _names(rng, 5000, 4)
    cities = _names(rng, 60, 3)
    people = int(profiles / (1 + duplicates))
    rand = rng.randrange
    first_day = date(2008, 1, 1).toordinal() - 62 * 365
    rows: list[dict[str, Any]] = [
        {
            "first_name": firsts[rand(len(firsts))],
            "last_name": lasts[rand(len(lasts))],
            "birthday": date.fromordinal(first_day + rand(62 * 365)).isoformat(),
            "address": f"{streets[rand(len(streets))]} {rand(1, 200)}",
            "postcode": f"{rand(10, 99)}-{rand(100, 999)}",
            "city": cities[rand(len(cities))],
        }
        for _ in range(people)
    ]
    entity = list(range(people))
    while len(rows) < profiles:
        i = rand(people)
        copy = dict(rows[i])
        if rng.random() < 0.3:
            copy["first_name"] = typo(rng, copy["first_name"])
        if rng.random() < 0.2:
            copy["last_name"] = typo(rng, copy["last_name"])
        if rng.random() < 0.35:
            copy["address"] = f"{streets[rand(len(streets))]} {rand(1, 200)}"
            copy["postcode"] = f"{rand(10, 99)}-{rand(100, 999)}"
        if rng.random() < 0.1:
            copy.pop("birthday")
        rows.append(copy)
        entity.append(i)
    return rows, entity


def scale(args: argparse.Namespace) -> dict[str, Any]:
    setup: dict[str, float] = {}
    started = time.perf_counter()
    rows, entity = synthetic_people(args.profiles, args.duplicates)
    setup["generate"] = round(time.perf_counter() - started, 1)
    with tempfile.TemporaryDirectory(prefix="accord-match-scale-", dir=args.tmp) as tmp:
        platform = open_platform(load_settings({"ACCORD_HOME": tmp, "ACCORD_ADMIN_TOKEN": "x"}))
        try:
            fresh = rows[len(rows) - args.new :] if args.new else []
            rows = rows[: len(rows) - len(fresh)]
            keys = [f"customer_id:S{n}" for n in range(len(rows))]
            pids = _profile_ids(0, len(rows))
            setup.update(_write(platform, rows, pids, keys, 0))
            print(f"setup {json.dumps(setup)}", file=sys.stderr)
            options = MatchOptions(args.merge_above, args.review_above)
            cpu, started = time.process_time(), time.perf_counter()
            report = run_match(platform.graph, platform.events, options)
            match_seconds = time.perf_counter() - started
            platform.processor.sync_identity()
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
            incremental: dict[str, Any] = {}
            if fresh:
                new_pids = _profile_ids(len(rows), len(fresh))
                new_keys = [f"customer_id:S{n}" for n in range(len(rows), len(rows) + len(fresh))]
                _write(platform, fresh, new_pids, new_keys, len(rows))
                pids, keys, rows = pids + new_pids, keys + new_keys, rows + fresh
                again_started = time.perf_counter()
                again = run_match(platform.graph, platform.events, options)
                platform.processor.sync_identity()
                incremental = {"seconds": round(time.perf_counter() - again_started, 1), "report": again.as_dict()}
            grouping = queries.grouping(platform.state)
        finally:
            platform.close()
    truth = {k: str(e) for k, e in zip(keys, entity, strict=True)}
    return {
        "profiles": len(rows),
        "setup_seconds": setup,
        "match_seconds": round(match_seconds, 1),
        "end_to_end_seconds": round(seconds, 1),
        "cpu_seconds": round(cpu, 1),
        "report": report.as_dict(),
        "incremental": incremental,
        "score": _fmt(pairwise_score(grouping, truth)),
    }


def _profile_ids(start: int, n: int) -> list[str]:
    """Sortable 26-character profile ids (the bench's own, cheaper than ULIDs)."""
    return [f"0BENCH{i:020d}" for i in range(start, start + n)]


def _write(platform: Any, rows: list[dict[str, Any]], pids: list[str], keys: list[str], seq0: int) -> dict[str, float]:
    """Profiles with one customer_id each in the state store, one identify event each in the event store, in bulk
    (the driver's executemany on SQLite, Arrow batches into DuckDB). Returns the seconds of each part."""
    taken: dict[str, float] = {}
    started = time.perf_counter()
    with platform.state.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql(
                "INSERT INTO profiles (id, created_at, conflicted) VALUES (?, ?, 0)", [(p, _STAMP) for p in pids]
            )
            conn.exec_driver_sql(
                "INSERT INTO identifiers (key, type, value, profile_id, first_seen_at) "
                "VALUES (?, 'customer_id', ?, ?, ?)",
                [(k, k[12:], p, _STAMP) for k, p in zip(keys, pids, strict=True)],
            )
        else:
            for lo in range(0, len(rows), 20_000):
                conn.execute(
                    t.profiles.insert(),
                    [{"id": p, "created_at": _NOW, "conflicted": False} for p in pids[lo : lo + 20_000]],
                )
                conn.execute(
                    t.identifiers.insert(),
                    [
                        {"key": k, "type": "customer_id", "value": k[12:], "profile_id": p, "first_seen_at": _NOW}
                        for k, p in zip(keys[lo : lo + 20_000], pids[lo : lo + 20_000], strict=True)
                    ],
                )
    taken["state_store"] = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    step = 200_000
    for lo in range(0, len(rows), step):
        hi = min(lo + step, len(rows))
        n = hi - lo
        columns: dict[str, Any] = {name: pa.nulls(n, EVENT_COLUMNS[name]) for name in EVENT_COLUMNS}
        columns["event_id"] = pa.array([f"0BENCHEVENT{seq0 + i:015d}" for i in range(lo, hi)], pa.string())
        columns["journal_seq"] = pa.array(range(seq0 + lo + 1, seq0 + hi + 1), pa.int64())
        columns["source_id"] = pa.array(["bench"] * n, pa.string())
        columns["message_id"] = pa.array([f"m{seq0 + i}" for i in range(lo, hi)], pa.string())
        columns["type"] = pa.array(["identify"] * n, pa.string())
        columns["channel"] = pa.array(["other"] * n, pa.string())
        columns["timestamp"] = columns["received_at"] = pa.array([_NOW] * n, EVENT_COLUMNS["timestamp"])
        columns["identifiers"] = pa.array([[k] for k in keys[lo:hi]], EVENT_COLUMNS["identifiers"])
        columns["anchor"] = pa.array(keys[lo:hi], pa.string())
        columns["profile_id"] = pa.array(pids[lo:hi], pa.string())
        columns["raw"] = pa.array([json.dumps({"type": "identify", "traits": r}) for r in rows[lo:hi]], pa.string())
        platform.events.load(pa.table(columns), seq0 + hi, [])
    taken["event_store"] = round(time.perf_counter() - started, 1)
    return taken


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--merge-above", type=float, default=MatchOptions.merge_above)
    parser.add_argument("--review-above", type=float, default=MatchOptions.review_above)
    sub = parser.add_subparsers(dest="mode", required=True)
    d = sub.add_parser("demo")
    d.add_argument("--home", type=Path, required=True, help="ACCORD_HOME where `accord demo load` ran")
    d.add_argument("--demo", type=Path, required=True, help="the demo directory (truth.csv)")
    d.add_argument("--repeat", type=int, default=3)
    d.add_argument("--review-oracle", action="store_true", help="then decide the review queue from truth.csv")
    c = sub.add_parser("tune", help="choose --merge-above on a held-out demo")
    c.add_argument("--home", type=Path, required=True, help="ACCORD_HOME where `accord demo load` ran")
    c.add_argument("--demo", type=Path, required=True, help="the demo directory (truth.csv)")
    c.add_argument("--candidates", type=float, nargs="+", default=[0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99])
    c.add_argument("--tolerance", type=float, default=0.005, help="F1 given up for a more cautious threshold")
    s = sub.add_parser("scale")
    s.add_argument("--profiles", type=int, default=100_000)
    s.add_argument("--duplicates", type=float, default=0.2, help="noisy duplicates per person")
    s.add_argument("--new", type=int, default=0, help="then add this many more and time an incremental run")
    s.add_argument("--tmp", type=Path, default=None, help="directory for the temporary stores (default: $TMPDIR)")
    args = parser.parse_args()
    result = {"demo": demo, "tune": tune, "scale": scale}[args.mode](args)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
