"""Probabilistic identity matching: accuracy on a loaded demo, and time at scale on synthetic profiles.

Demo mode copies a home where `accord demo load` ran (state.sqlite + events.duckdb), runs `run_match` on the copy
(REPEAT times, a fresh copy each) and prints seconds and pairwise precision/recall/F1 against truth.csv, for the
records (customer_id identifiers: CRM and legacy rows) and for every identifier, before and after:

    .venv/bin/python bench/identity_match.py demo --home HOME --demo DEMO_DIR --repeat 3

Scale mode writes N synthetic profiles straight into a fresh state store and event store (identify events with
name, birth date, address, city; a share of them noisy duplicates that share no identifier), then times one
full run_match over them (setup not timed):

    .venv/bin/python bench/identity_match.py scale --profiles 100000
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
from datetime import UTC, date, datetime, timedelta
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
from accord.storage import new_id
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
                started = time.perf_counter()
                report = run_match(platform.graph, platform.events, MatchOptions(args.merge_above, args.review_above))
                seconds = time.perf_counter() - started
                platform.processor.sync_identity()
                after = queries.grouping(platform.state)
                reviewed = _work_the_queue(platform, everything) if args.review_oracle else None
            finally:
                platform.close()
        runs.append(
            {
                "seconds": round(seconds, 2),
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


def _names(rng: Random, n: int, parts: int) -> list[str]:
    letters = "abcdefghijklmnoprstuwyz"
    vowels = "aeiouy"
    return ["".join(rng.choice(letters) + rng.choice(vowels) for _ in range(parts)).capitalize() for _ in range(n)]


def scale(args: argparse.Namespace) -> dict[str, Any]:
    rng = Random(7)
    firsts = _FIRST + _names(rng, 3000, 3)
    lasts = _names(rng, 40_000, 4)
    streets = _names(rng, 5000, 4)
    cities = _names(rng, 60, 3)
    rows: list[dict[str, Any]] = []
    entity: list[int] = []
    people = int(args.profiles / (1 + args.duplicates))
    for i in range(people):
        person = {
            "first_name": rng.choice(firsts),
            "last_name": rng.choice(lasts),
            "birthday": (date(2008, 1, 1) - timedelta(days=rng.randrange(62 * 365))).isoformat(),
            "address": f"{rng.choice(streets)} {rng.randrange(1, 200)}",
            "postcode": f"{rng.randrange(10, 99)}-{rng.randrange(100, 999)}",
            "city": rng.choice(cities),
        }
        rows.append(person)
        entity.append(i)
    while len(rows) < args.profiles:
        i = rng.randrange(people)
        copy = dict(rows[i])
        copy["first_name"] = typo(rng, copy["first_name"]) if rng.random() < 0.3 else copy["first_name"]
        copy["last_name"] = typo(rng, copy["last_name"]) if rng.random() < 0.2 else copy["last_name"]
        if rng.random() < 0.35:
            copy["address"] = f"{rng.choice(streets)} {rng.randrange(1, 200)}"
            copy["postcode"] = f"{rng.randrange(10, 99)}-{rng.randrange(100, 999)}"
        if rng.random() < 0.1:
            copy.pop("birthday")
        rows.append(copy)
        entity.append(i)
    with tempfile.TemporaryDirectory(prefix="accord-match-scale-") as tmp:
        platform = open_platform(load_settings({"ACCORD_HOME": tmp, "ACCORD_ADMIN_TOKEN": "x"}))
        try:
            started = time.perf_counter()
            fresh = rows[len(rows) - args.new :] if args.new else []
            rows = rows[: len(rows) - len(fresh)]
            pids = [new_id() for _ in rows]
            keys = [f"customer_id:S{n}" for n in range(len(rows))]
            _write(platform, rows, pids, keys, 0)
            setup = time.perf_counter() - started
            started = time.perf_counter()
            report = run_match(platform.graph, platform.events, MatchOptions(args.merge_above, args.review_above))
            seconds = time.perf_counter() - started
            incremental: dict[str, Any] = {}
            if fresh:
                new_pids = [new_id() for _ in fresh]
                new_keys = [f"customer_id:S{n}" for n in range(len(rows), len(rows) + len(fresh))]
                _write(platform, fresh, new_pids, new_keys, len(rows))
                pids, keys, rows = pids + new_pids, keys + new_keys, rows + fresh
                started = time.perf_counter()
                again = run_match(platform.graph, platform.events, MatchOptions(args.merge_above, args.review_above))
                incremental = {"seconds": round(time.perf_counter() - started, 1), "report": again.as_dict()}
            grouping = queries.grouping(platform.state)
        finally:
            platform.close()
    truth = {k: str(e) for k, e in zip(keys, entity, strict=True)}
    return {
        "profiles": len(rows),
        "setup_seconds": round(setup, 1),
        "match_seconds": round(seconds, 1),
        "report": report.as_dict(),
        "incremental": incremental,
        "score": _fmt(pairwise_score(grouping, truth)),
    }


def _write(platform: Any, rows: list[dict[str, Any]], pids: list[str], keys: list[str], seq0: int) -> None:
    """Profiles with one customer_id each in the state store, one identify event each in the event store."""
    now = datetime(2026, 11, 1, tzinfo=UTC)
    with platform.state.begin() as conn:
        for lo in range(0, len(rows), 20_000):
            hi = min(lo + 20_000, len(rows))
            conn.execute(
                t.profiles.insert(),
                [{"id": p, "created_at": now, "conflicted": False} for p in pids[lo:hi]],
            )
            conn.execute(
                t.identifiers.insert(),
                [
                    {"key": k, "type": "customer_id", "value": k[12:], "profile_id": p, "first_seen_at": now}
                    for k, p in zip(keys[lo:hi], pids[lo:hi], strict=True)
                ],
            )
    for lo in range(0, len(rows), 100_000):
        hi = min(lo + 100_000, len(rows))
        columns: dict[str, list[Any]] = {name: [None] * (hi - lo) for name in EVENT_COLUMNS}
        columns["event_id"] = [new_id() for _ in range(lo, hi)]
        columns["journal_seq"] = list(range(seq0 + lo + 1, seq0 + hi + 1))
        columns["source_id"] = ["bench"] * (hi - lo)
        columns["message_id"] = [f"m{seq0 + n}" for n in range(lo, hi)]
        columns["type"] = ["identify"] * (hi - lo)
        columns["channel"] = ["other"] * (hi - lo)
        columns["timestamp"] = columns["received_at"] = [now] * (hi - lo)
        columns["identifiers"] = [[k] for k in keys[lo:hi]]
        columns["anchor"] = keys[lo:hi]
        columns["profile_id"] = pids[lo:hi]
        columns["raw"] = [json.dumps({"type": "identify", "traits": r}) for r in rows[lo:hi]]
        batch = pa.table({n: pa.array(v, EVENT_COLUMNS[n]) for n, v in columns.items()})
        platform.events.load(batch, seq0 + hi, [])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--merge-above", type=float, default=0.99)
    parser.add_argument("--review-above", type=float, default=0.8)
    sub = parser.add_subparsers(dest="mode", required=True)
    d = sub.add_parser("demo")
    d.add_argument("--home", type=Path, required=True, help="ACCORD_HOME where `accord demo load` ran")
    d.add_argument("--demo", type=Path, required=True, help="the demo directory (truth.csv)")
    d.add_argument("--repeat", type=int, default=3)
    d.add_argument("--review-oracle", action="store_true", help="then decide the review queue from truth.csv")
    s = sub.add_parser("scale")
    s.add_argument("--profiles", type=int, default=100_000)
    s.add_argument("--duplicates", type=float, default=0.2, help="noisy duplicates per person")
    s.add_argument("--new", type=int, default=0, help="then add this many more and time an incremental run")
    args = parser.parse_args()
    result = demo(args) if args.mode == "demo" else scale(args)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
