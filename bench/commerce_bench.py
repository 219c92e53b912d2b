"""Commerce benchmark: availability (nearest stores that have a SKU) and reservations, in process and over HTTP.

Builds a fresh SQLite state store (the embedded default) with 1,000 stores and 100,000 SKUs (stock in three
tiers: 1,000 SKUs in every store, 9,000 in 100 stores, 90,000 in 5 stores; 2.35 million stock rows), then

1. availability in process: `commerce.inventory.availability(sku, lat, lon, limit=5)` for random SKUs and points;
2. reservations in process: the reservation desk (group commit) from 16 threads;
3. over HTTP against `accord serve`: `GET /api/v1/availability?...&limit=5` and `POST /api/v1/reservations`
   (each with a new idempotency key), driven by wrk.

    .venv/bin/python bench/commerce_bench.py                 # 3 runs x 10 s over HTTP
    .venv/bin/python bench/commerce_bench.py --quick         # 1 run x 3 s, 100 stores x 10,000 SKUs
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

BENCH = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
RESULTS = BENCH / "results" / "commerce.json"
TOKEN = "bench-admin-token"
ALWAYS = {d: ["00:00", "23:59"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def build(state_url: str, stores: int, skus: int, rng: random.Random) -> dict[str, Any]:
    """Stores spread over Europe, a catalog, stock in three tiers; returns what the load generators need."""
    from accord.commerce import locations
    from accord.storage import create_state_engine, migrate, utcnow

    engine = create_state_engine(state_url)
    migrate(engine)
    points = [(rng.uniform(36.0, 60.0), rng.uniform(-9.0, 30.0)) for _ in range(stores)]
    locations.upsert_locations(
        engine,
        [
            {
                "id": f"st-{i:04d}",
                "name": f"Store {i}",
                "lat": lat,
                "lon": lon,
                "timezone": "Europe/Warsaw",
                "opening_hours": ALWAYS,
                "pickup": True,
                "geofence_m": 150,
            }
            for i, (lat, lon) in enumerate(points)
        ],
    )
    now = utcnow().strftime("%Y-%m-%d %H:%M:%S.%f")
    sku_ids = [f"SKU-{i:06d}" for i in range(skus)]
    popular, medium = skus // 100, skus // 10
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO catalog_items (sku, name, category, price_minor, currency, attributes, updated_at) "
            "VALUES (?, ?, 'Bench', ?, 'PLN', '{}', ?)",
            [(s, "Product " + s, rng.randint(100, 100_000), now) for s in sku_ids],
        )
        store_ids = [f"st-{i:04d}" for i in range(stores)]
        rows: list[tuple[str, str, int, int, str]] = []

        def flush() -> None:
            conn.exec_driver_sql(
                "INSERT INTO stock_levels (location_id, sku, on_hand, reserved, safety_stock, updated_at) "
                "VALUES (?, ?, ?, 0, ?, ?)",
                [(loc, sku, on_hand, safety, now) for loc, sku, on_hand, safety, now in rows],
            )
            rows.clear()

        for n, sku in enumerate(sku_ids):
            if n < popular:
                holders = store_ids
            elif n < medium:
                holders = rng.sample(store_ids, min(100, stores))
            else:
                holders = rng.sample(store_ids, min(5, stores))
            for loc in holders:
                on_hand = 1_000_000 if n < popular else rng.choice((0, 0, 1, 2, 3, 5, 8, 13, 21))
                rows.append((loc, sku, on_hand, 1 if on_hand > 5 and n >= popular else 0, now))
            if len(rows) > 200_000:
                flush()
        flush()
    with engine.connect() as conn:
        count = conn.exec_driver_sql("SELECT count(*) FROM stock_levels").scalar_one()
    log(f"built {stores} stores, {skus} SKUs, {count} stock rows in {time.perf_counter() - started:.1f} s")
    engine.dispose()
    return {
        "stores": stores,
        "skus": skus,
        "stock_rows": int(count),
        "popular": sku_ids[:popular],
        "all": sku_ids,
        "store_ids": store_ids,
    }


def queries(data: dict[str, Any], n: int, rng: random.Random) -> list[tuple[str, float, float]]:
    """Random (sku, lat, lon): a third each from the popular, medium and long-tail tiers."""
    skus = data["all"]
    popular, medium = len(skus) // 100, len(skus) // 10
    out = []
    for i in range(n):
        tier = i % 3
        sku = (
            skus[rng.randrange(popular)]
            if tier == 0
            else skus[rng.randrange(popular, medium)]
            if tier == 1
            else skus[rng.randrange(medium, len(skus))]
        )
        out.append((sku, rng.uniform(37.0, 59.0), rng.uniform(-8.0, 29.0)))
    return out


def in_process(state_url: str, data: dict[str, Any], rng: random.Random, n: int) -> dict[str, Any]:
    """Availability and desk reservations called directly (no HTTP)."""
    from accord.collect.journal import Journal
    from accord.commerce import inventory
    from accord.commerce.desk import ReservationDesk
    from accord.storage import create_state_engine

    engine = create_state_engine(state_url)
    qs = queries(data, n, rng)
    inventory.availability(engine, *qs[0])  # warm the location cache
    latencies, empty = [], 0
    cpu = time.process_time()
    cpu_each: list[float] = []
    for sku, lat, lon in qs:
        started, started_cpu = time.perf_counter(), time.thread_time()
        found = inventory.availability(engine, sku, lat, lon, limit=5)
        latencies.append(time.perf_counter() - started)
        cpu_each.append(time.thread_time() - started_cpu)
        empty += not found
    avail = {
        "queries": n,
        "p50_ms": pct(latencies, 0.5) * 1000,
        "p99_ms": pct(latencies, 0.99) * 1000,
        "qps_one_thread": n / sum(latencies),
        "empty_answers": empty,
        "cpu_ms_per_query": (time.process_time() - cpu) * 1000 / n,
        # CPU time of each call (excludes waiting for a CPU on a busy machine): the service time itself
        "cpu_p50_ms": pct(cpu_each, 0.5) * 1000,
        "cpu_p99_ms": pct(cpu_each, 0.99) * 1000,
    }
    desk = ReservationDesk(engine, Journal(engine)).start()
    total = 4 * n
    lat_res: list[float] = []
    lock = threading.Lock()
    targets = [(rng.choice(data["store_ids"]), rng.choice(data["popular"])) for _ in range(total)]

    def one(i: int) -> None:
        loc, sku = targets[i]
        started = time.perf_counter()
        desk.reserve(loc, sku, 1, idempotency_key=f"inproc-{i}")
        with lock:
            lat_res.append(time.perf_counter() - started)

    started = time.perf_counter()
    cpu = time.process_time()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, range(total)))
    elapsed = time.perf_counter() - started
    desk.stop()
    engine.dispose()
    reserve = {
        "reservations": total,
        "ops_per_s": total / elapsed,
        "p50_ms": pct(lat_res, 0.5) * 1000,
        "p99_ms": pct(lat_res, 0.99) * 1000,
        "batches": desk.batches,
        "cpu_ms_per_reservation_incl_client_threads": (time.process_time() - cpu) * 1000 / total,
    }
    return {"availability": avail, "reserve": reserve}


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wrk(lua: str, url: str, args: list[str], connections: int, seconds: int) -> dict[str, Any]:
    cmd = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "--timeout",
        "30s",
        "-s",
        str(BENCH / lua),
        url,
        "--",
        *args,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    match = re.search(r"^BENCH_JSON (\{.*\})$", out.stdout, re.M)
    if out.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stderr.strip()} {out.stdout[-500:]}")
    result: dict[str, Any] = json.loads(match.group(1))
    result["errors"] = sum(v for k, v in result.items() if k.startswith("errors_"))
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


def over_http(home: Path, data: dict[str, Any], rng: random.Random, args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    env = {**os.environ, "ACCORD_HOME": str(home), "ACCORD_PORT": str(port), "ACCORD_ADMIN_TOKEN": TOKEN}
    log_file = open(home.parent / "server.log", "ab")  # noqa: SIM115
    proc = subprocess.Popen([str(BIN / "accord"), "serve"], env=env, stdout=log_file, stderr=log_file)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        paths = home.parent / "paths.txt"
        paths.write_text(
            "".join(
                f"/api/v1/availability?sku={s}&lat={la:.5f}&lon={lo:.5f}&limit=5\n"
                for s, la, lo in queries(data, 20_000, rng)
            )
        )
        bodies = home.parent / "reservations.jsonl"
        bodies.write_text(
            "".join(
                json.dumps(
                    {
                        "location_id": rng.choice(data["store_ids"]),
                        "sku": rng.choice(data["popular"]),
                        "quantity": 1,
                        "idempotency_key": "@@ID@@",
                    }
                )
                + "\n"
                for _ in range(5_000)
            )
        )
        auth = f"Bearer {TOKEN}"
        runs: dict[str, list[dict[str, Any]]] = {"availability": [], "reserve": []}
        runs.update({f"availability_c{c}": [] for c in args.light})
        for run in range(args.runs):
            wrk("commerce_get.lua", url, [str(paths), auth], args.connections, 2)  # warm-up
            cpu = cpu_seconds(proc.pid)
            runs["availability"].append(
                wrk("commerce_get.lua", url, [str(paths), auth], args.connections, args.seconds)
            )
            runs["availability"][-1]["server_cpu_ms_per_request"] = (
                (cpu_seconds(proc.pid) - cpu) * 1000 / max(1, runs["availability"][-1]["requests"])
            )
            for light in args.light:  # latency below saturation: fewer clients waiting on one event loop
                cpu = cpu_seconds(proc.pid)
                done = wrk("commerce_get.lua", url, [str(paths), auth], light, args.seconds)
                done["server_cpu_ms_per_request"] = (cpu_seconds(proc.pid) - cpu) * 1000 / max(1, done["requests"])
                runs[f"availability_c{light}"].append(done)
            cpu = cpu_seconds(proc.pid)
            nonce = f"r{run}-{rng.randrange(10**9)}"
            runs["reserve"].append(
                wrk(
                    "wrk_post.lua",
                    f"{url}/api/v1/reservations",
                    [str(bodies), auth, nonce],
                    args.connections,
                    args.seconds,
                )
            )
            runs["reserve"][-1]["server_cpu_ms_per_request"] = (
                (cpu_seconds(proc.pid) - cpu) * 1000 / max(1, runs["reserve"][-1]["requests"])
            )
            for kind in runs:
                r = runs[kind][-1]
                log(
                    f"run {run + 1} {kind}: {r['rps']:,.0f}/s p50 {r['latency_p50_us'] / 1000:.1f} ms "
                    f"p99 {r['latency_p99_us'] / 1000:.1f} ms errors {r['errors']} "
                    f"server CPU {r['server_cpu_ms_per_request']:.2f} ms/request"
                )
        with httpx.Client(base_url=url, headers={"Authorization": auth}) as client:
            client.get("/api/v1/health")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    from accord.storage import create_state_engine

    engine = create_state_engine(f"sqlite:///{home / 'state.sqlite'}")
    with engine.connect() as conn:
        reservations = conn.exec_driver_sql("SELECT count(*), coalesce(sum(quantity), 0) FROM reservations").one()
        reserved = conn.exec_driver_sql("SELECT coalesce(sum(reserved), 0) FROM stock_levels").scalar_one()
        oversold = conn.exec_driver_sql(
            "SELECT count(*) FROM stock_levels WHERE reserved > on_hand - safety_stock"
        ).scalar_one()
    engine.dispose()
    created = sum(r["requests"] - r["errors"] for r in runs["reserve"])
    checks = {
        "reservation_rows": reservations[0],
        "units_reserved": int(reserved),
        "oversold_rows": oversold,
        "wrk_completed_reservations": created,
    }
    return {"runs": runs, "checks": checks}


def summary(runs: list[dict[str, Any]]) -> dict[str, float]:
    return {
        "server_cpu_ms_per_request_median": statistics.median(r["server_cpu_ms_per_request"] for r in runs),
        "rps_median": statistics.median(r["rps"] for r in runs),
        "rps_min": min(r["rps"] for r in runs),
        "rps_max": max(r["rps"] for r in runs),
        "p50_ms_median": statistics.median(r["latency_p50_us"] for r in runs) / 1000,
        "p99_ms_median": statistics.median(r["latency_p99_us"] for r in runs) / 1000,
        "errors": sum(r["errors"] for r in runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", type=int, default=1000)
    parser.add_argument("--skus", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--queries", type=int, default=3000, help="in-process availability queries")
    parser.add_argument(
        "--light",
        type=lambda v: [int(c) for c in v.split(",") if c],
        default=[1, 4],
        help="also measure availability with these connection counts (latency below saturation)",
    )
    parser.add_argument("--quick", action="store_true", help="1 run x 3 s, 100 stores x 10,000 SKUs")
    args = parser.parse_args()
    if args.quick:
        args.stores, args.skus, args.runs, args.seconds, args.queries = 100, 10_000, 1, 3, 600
    rng = random.Random(7)
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="accord-commerce-bench-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        state_url = f"sqlite:///{home / 'state.sqlite'}"
        data = build(state_url, args.stores, args.skus, rng)
        local = in_process(state_url, data, rng, args.queries)
        log(f"in process: {json.dumps(local)}")
        http = over_http(home, data, rng, args)
    result = {
        "command": " ".join(sys.argv),
        "machine": {"nproc": os.cpu_count(), "loadavg_at_start": load_start, "loadavg_at_end": os.getloadavg()},
        "dataset": {k: data[k] for k in ("stores", "skus", "stock_rows")},
        "in_process": local,
        "http": {kind: summary(r) for kind, r in http["runs"].items()},
        "http_runs": http["runs"],
        "checks": http["checks"],
        "connections": args.connections,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2, default=str))
    print(json.dumps({k: result[k] for k in ("dataset", "in_process", "http", "checks", "machine")}, indent=2))


if __name__ == "__main__":
    main()
