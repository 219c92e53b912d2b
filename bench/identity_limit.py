"""Identity resolution past the per-profile anonymous id limit (docs/benchmarks.md, "Known slow path").

USERS logged-in users each arrive with ANON new anonymous ids (a login touch: user id + new anonymous id, one
minute apart, users interleaved, 100 touches per resolve() call). The first LIMIT ids of each user are resolved
untimed; the rest (every one a limit conflict) are timed. Each run starts from a fresh SQLite file (or the
PostgreSQL database given, emptied first). Prints events/s of the timed part per run and the median.

    .venv/bin/python bench/identity_limit.py --users 50 --anon 1500 --runs 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from accord.identity.graph import IdentityGraph, Touch
from accord.identity.rules import IdentityRules
from accord.storage import create_state_engine, metadata, migrate

T0 = datetime(2026, 1, 1, tzinfo=UTC)
PER_CALL = 100


def touches(users: int, start: int, stop: int) -> list[Touch]:
    out = []
    for i in range(start, stop):
        for u in range(users):
            n = i * users + u
            out.append(
                Touch([f"user_id:u{u}", f"anonymous_id:a{u}-{i}"], T0 + timedelta(minutes=n), f"m{n}", "src", None)
            )
    return out


def run_once(url: str | None, users: int, anon: int, limit: int) -> tuple[float, float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_state_engine(url or f"sqlite:///{os.path.join(tmp, 'state.db')}")
        if url:
            metadata.drop_all(engine)
        migrate(engine)
        graph = IdentityGraph(engine, IdentityRules())
        warm = touches(users, 0, limit)
        for j in range(0, len(warm), PER_CALL):
            graph.resolve(warm[j : j + PER_CALL])
        timed = touches(users, limit, anon)
        wall0, cpu0 = time.perf_counter(), time.process_time()
        for j in range(0, len(timed), PER_CALL):
            graph.resolve(timed[j : j + PER_CALL])
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        with engine.connect() as conn:
            conflicts = conn.execute(sa.text("SELECT count(*) FROM identity_conflicts")).scalar_one()
        engine.dispose()
        return wall, cpu, len(timed) if conflicts else -len(timed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=50)
    ap.add_argument("--anon", type=int, default=1500, help="anonymous ids per user")
    ap.add_argument("--limit", type=int, default=500, help="the anonymous id limit (untimed up to there)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--state-url", default=None)
    args = ap.parse_args()
    rates, cpus = [], []
    for r in range(args.runs):
        wall, cpu, n = run_once(args.state_url, args.users, args.anon, args.limit)
        if n < 0:
            raise SystemExit("no conflict recorded: the stream did not pass the limit")
        rates.append(n / wall)
        cpus.append(cpu)
        print(f"run {r + 1}: {n} events past the limit in {wall:.2f} s wall, {cpu:.2f} s CPU: {n / wall:.0f} events/s")
    print(
        f"median: {statistics.median(rates):.0f} events/s past the limit, "
        f"{statistics.median(cpus):.2f} s CPU; load average {os.getloadavg()}"
    )


if __name__ == "__main__":
    main()
