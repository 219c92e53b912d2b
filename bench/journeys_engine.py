"""Journey engine benchmark: step transitions per second, and a 1,000,000-entrant journey's first steps.

    .venv/bin/python bench/journeys_engine.py --entrants 100000             # transitions/s (3 runs, median)
    .venv/bin/python bench/journeys_engine.py --entrants 1000000 --runs 1   # the 1M-entrant journey

The journey is entry -> split -> send -> wait -> branch -> send; delivery is excluded (the sender only counts), as
the issue asks. The baseline in the same run is the bare limit of the store: inserting the same number of
transition rows with one executemany per batch and nothing else (no engine, no instance updates).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from accord.journeys import service as journeys
from accord.journeys import tables as t
from accord.journeys.engine import Engine, SendRequest
from accord.storage import create_state_engine, migrate, new_id

JOURNEY = """
name: bench
trigger: {api: true}
entry: {reentry: always}
steps:
  - id: ab
    split: [{percent: 50, next: a}, {percent: 50, next: b}]
  - id: a
    send: {template: offer-a, channels: [push, sms, email]}
    next: wait
  - id: b
    send: {template: offer-b, channels: [email]}
  - id: wait
    wait: 1d
  - id: vip
    branch:
      - {if: {tier: gold}, next: call}
    else: end
  - id: call
    send: {template: vip, channels: [sms]}
  - id: end
    goal: done
"""


def run_once(entrants: int, batch: int, url: str | None) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        state = create_state_engine(url or f"sqlite:///{Path(tmp) / 'state.sqlite'}")
        migrate(state)
        now = [datetime(2026, 1, 1, tzinfo=UTC)]
        sent = [0]

        def sender(conn: sa.Connection, request: SendRequest) -> str:
            sent[0] += 1
            return "queued"

        def traits(profile_ids: list[str]) -> dict[str, dict[str, str]]:
            return {p: {"tier": "silver"} for p in profile_ids}

        engine = Engine(state, sender=sender, clock=lambda: now[0], traits=traits)
        journeys.apply(state, JOURNEY, activate=True)
        pids = [new_id() for _ in range(entrants)]
        start = time.perf_counter()
        for i in range(0, entrants, 10_000):
            journeys.trigger(engine, "bench", pids[i : i + 10_000])
        entered = time.perf_counter() - start
        start = time.perf_counter()
        engine.run_until_idle(batch)  # split -> send -> wait
        first = time.perf_counter() - start
        now[0] += timedelta(days=1, minutes=1)
        start = time.perf_counter()
        engine.run_until_idle(batch)  # branch -> goal -> end
        second = time.perf_counter() - start
        with state.connect() as conn:
            transitions = conn.execute(sa.select(sa.func.count()).select_from(t.journey_transitions)).scalar_one()
        # bare limit: the same number of transition rows inserted in batches, nothing else
        rows = [
            {"instance_id": new_id(), "journey_id": "J", "step_id": "s", "outcome": "ok", "at": now[0]}
            for _ in range(transitions)
        ]
        start = time.perf_counter()
        for i in range(0, len(rows), batch * 3):
            with state.begin() as conn:
                conn.execute(t.journey_transitions.insert(), rows[i : i + batch * 3])
        bare = time.perf_counter() - start
        state.dispose()
    return {
        "entrants": entrants,
        "enter_s": entered,
        "first_steps_s": first,
        "transitions": transitions,
        "transitions_per_s": transitions / (first + second),
        "bare_inserts_per_s": transitions / bare,
        "sent": sent[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entrants", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--state-url", default=None, help="default: a fresh SQLite file")
    args = parser.parse_args()
    results = [run_once(args.entrants, args.batch, args.state_url) for _ in range(args.runs)]
    for r in results:
        print({k: round(v, 2) if isinstance(v, float) else v for k, v in r.items()})
    med = {k: statistics.median(r[k] for r in results) for k in results[0]}
    print(
        f"\nmedian of {args.runs}: {med['entrants']:,.0f} entrants; entering {med['enter_s']:.1f} s; first steps "
        f"{med['first_steps_s']:.1f} s; {med['transitions_per_s']:,.0f} transitions/s vs bare insert "
        f"{med['bare_inserts_per_s']:,.0f} rows/s (ratio {med['transitions_per_s'] / med['bare_inserts_per_s']:.2f})"
    )


if __name__ == "__main__":
    main()
