"""Offers and loyalty benchmark: validate, redeem (shared and single-use codes), earn and burn over HTTP.

Starts `accord serve` on the embedded default (SQLite + DuckDB, fresh ACCORD_HOME), creates customers through the
Segment API, an offer with a shared code, one with single-use codes, and balances to burn; then drives each
endpoint with wrk (bench/wrk_post.lua with "PATH<TAB>BODY" templates: every request has a new idempotency
key) and prints a markdown table of medians. Results go to bench/results/offers_latest.json. See docs/benchmarks.md.

    .venv/bin/python bench/offers_bench.py                 # 3 runs x 10 s per endpoint, c=16
    .venv/bin/python bench/offers_bench.py --runs 1 --seconds 3 --stages validate,burn
    .venv/bin/python bench/offers_bench.py --in-process   # the service functions alone, no HTTP (32 threads)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from run import log, machine, source_digest, start_accord  # noqa: E402  (bench/ is not a package)

LUA = BENCH / "wrk_post.lua"
RESULTS = BENCH / "results" / "offers_latest.json"
STAGES = ("validate", "redeem", "redeem_single_use", "earn", "burn")
CUSTOMERS = 200
CODES_PER_RUN = 60_000


def wrk(url: str, templates: Path, auth: str, nonce: str, connections: int, seconds: float) -> dict[str, Any]:
    """One wrk run (1 thread) with the offers script; its figures."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "--timeout", "30s"]
    cmd += ["-s", str(LUA), url, "--", str(templates), auth, nonce]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    match = re.search(r"^BENCH_JSON (\{.*\})$", out.stdout, re.M)
    if out.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stderr.strip()} {out.stdout[-500:]}")
    result: dict[str, Any] = json.loads(match.group(1))
    result["errors"] = sum(v for k, v in result.items() if k.startswith("errors_"))
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


def setup(client: httpx.Client, url: str, auth: str) -> dict[str, Any]:
    """Customers, offers, codes and balances the load uses."""
    users = [f"bench-{i}" for i in range(CUSTOMERS)]
    batch = {"batch": [{"type": "identify", "userId": u, "traits": {"email": f"{u}@example.com"}} for u in users]}
    httpx.post(f"{url}/v1/batch", json=batch, headers={"Authorization": auth}, timeout=60).raise_for_status()
    deadline = time.monotonic() + 120
    while client.get("/api/v1/stats").json()["processing_lag"]:
        if time.monotonic() > deadline:
            raise RuntimeError("identifies were not processed")
        time.sleep(0.2)
    profiles = [
        client.get("/api/v1/profiles/resolve", params={"identifier": f"user_id:{u}"}).json()["profile_id"]
        for u in users
    ]
    client.put("/api/v1/loyalty/program", json={"channel_multipliers": {"app": 2}}).raise_for_status()
    shared = client.post(
        "/api/v1/offers",
        json={"name": "Bench 10%", "code": "BENCH10", "channels": ["store", "web", "app"], "min_basket_minor": 100},
    ).json()
    unique = client.post("/api/v1/offers", json={"name": "Bench single use", "code_policy": "unique"}).json()
    for pid in profiles:  # balances to burn from
        body = {"idempotency_key": f"seed-{pid}", "channel": "web", "points": 1_000_000_000}
        client.post(f"/api/v1/loyalty/{pid}/earn", json=body).raise_for_status()
    return {"profiles": profiles, "shared": shared, "unique": unique}


def templates(stage: str, data: dict[str, Any], client: httpx.Client, folder: Path, run: int) -> Path:
    """The request templates of one stage (one line per request shape, cycled by wrk)."""
    lines: list[str] = []
    profiles = data["profiles"]
    if stage in ("validate", "redeem"):
        path = "/api/v1/coupons/validate" if stage == "validate" else "/api/v1/coupons/redeem"
        for i, pid in enumerate(profiles):
            body = {"code": "BENCH10", "channel": "store", "store_id": f"S{i % 20}", "profile_id": pid,
                    "basket_minor": 12_345, "currency": "PLN", "idempotency_key": "@@ID@@"}  # fmt: skip
            lines.append(f"{path}\t{json.dumps(body)}")
    elif stage == "redeem_single_use":
        offer_id = data["unique"]["id"]
        made = client.post(f"/api/v1/offers/{offer_id}/codes", json={"count": CODES_PER_RUN}, timeout=300)
        made.raise_for_status()
        for code in made.json()["codes"]:
            body = {"code": code, "channel": "web", "idempotency_key": "@@ID@@"}
            lines.append(f"/api/v1/coupons/redeem\t{json.dumps(body)}")
    elif stage == "earn":
        for pid in profiles:
            body = {"idempotency_key": "@@ID@@", "channel": "app", "amount_minor": 12_345, "currency": "PLN"}
            lines.append(f"/api/v1/loyalty/{pid}/earn\t{json.dumps(body)}")
    elif stage == "burn":
        for pid in profiles:
            body = {"idempotency_key": "@@ID@@", "points": 1, "channel": "store", "store_id": "S1"}
            lines.append(f"/api/v1/loyalty/{pid}/burn\t{json.dumps(body)}")
    path_ = folder / f"{stage}-{run}.txt"
    path_.write_text("\n".join(lines) + "\n")
    return path_


def in_process(args: argparse.Namespace, stages: list[str]) -> dict[str, Any]:
    """The same operations called on the services in this process (32 caller threads, no HTTP), with the
    processor resolving in its worker process as in the server; per-call latency percentiles."""
    import threading

    from accord.collect.emit import emit
    from accord.config import load_settings
    from accord.loyalty.service import EarnRequest
    from accord.offers.service import CouponRequest, OfferSpec, create_offer, generate_codes
    from accord.platform import open_platform
    from accord.profiles import service as profiles

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="accord-offers-inproc-") as tmp:
        settings = load_settings({"ACCORD_HOME": tmp})
        p = open_platform(settings)
        p.processor.start(worker_process=True, state_url=settings.state_url)
        try:
            with p.state.begin() as conn:
                identifies = [{"type": "identify", "userId": f"u{i}"} for i in range(CUSTOMERS)]
                emit(conn, p.journal, "bench", "web", identifies)
            p.processor.drain(120)
            pids = [profiles.resolve(p.state, p.rules, f"user_id:u{i}") or "" for i in range(CUSTOMERS)]
            create_offer(p.state, OfferSpec(name="b", code="BENCH10", min_basket_minor=100))
            unique = create_offer(p.state, OfferSpec(name="u", code_policy="unique"))
            codes = generate_codes(p.state, unique["id"], CODES_PER_RUN * args.runs)
            for pid in pids:
                p.loyalty.earn(pid, EarnRequest(f"seed-{pid}", "web", points=10**9))
            counter = iter(range(10**9))
            lock = threading.Lock()

            def call(stage: str) -> None:
                with lock:
                    n = next(counter)
                pid = pids[n % len(pids)]
                coupon = CouponRequest("BENCH10", "store", "S1", pid, 12_345, "PLN")
                if stage == "validate":
                    p.offers.validate(coupon)
                elif stage == "redeem":
                    p.offers.redeem(coupon, f"r{n}")
                elif stage == "redeem_single_use":
                    p.offers.redeem(CouponRequest(codes[n % len(codes)], "web"), f"s{n}")
                elif stage == "earn":
                    p.loyalty.earn(pid, EarnRequest(f"e{n}", "app", amount_minor=12_345, currency="PLN"))
                else:
                    p.loyalty.burn(pid, 1, f"b{n}", "store")

            for stage in stages:
                runs = []
                for _ in range(args.runs):
                    latencies: list[float] = []
                    stop = time.monotonic() + args.seconds
                    cpu0 = time.process_time()

                    def worker(stage: str = stage, latencies: list[float] = latencies, stop: float = stop) -> None:
                        while time.monotonic() < stop:
                            t0 = time.perf_counter()
                            call(stage)
                            latencies.append(time.perf_counter() - t0)

                    threads = [threading.Thread(target=worker) for _ in range(32)]
                    started = time.perf_counter()
                    for th in threads:
                        th.start()
                    for th in threads:
                        th.join()
                    elapsed = time.perf_counter() - started
                    latencies.sort()
                    figures = {
                        "requests": len(latencies),
                        "rps": len(latencies) / elapsed,
                        "latency_p50_us": latencies[len(latencies) // 2] * 1e6,
                        "latency_p99_us": latencies[int(len(latencies) * 0.99)] * 1e6,
                        "errors": 0,
                        "duration_us": elapsed * 1e6,
                        "server_cpu_s": time.process_time() - cpu0,
                        "load": os.getloadavg()[0],
                    }
                    runs.append(figures)
                    p99 = figures["latency_p99_us"] / 1000
                    log(f"in-process {stage}: {figures['rps']:,.0f} ops/s, p99 {p99:.1f} ms")
                out[stage] = runs
        finally:
            p.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description="Offers and loyalty benchmark (see docs/benchmarks.md).")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument("--in-process", action="store_true", help="call the services directly (no HTTP)")
    args = parser.parse_args()
    stages = [s for s in args.stages.split(",") if s]
    if args.in_process:
        figures = in_process(args, stages)
        figures["machine"] = machine()
        figures["command"] = " ".join([".venv/bin/python", "bench/offers_bench.py", *sys.argv[1:]])
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.with_name("offers_inprocess_latest.json").write_text(json.dumps(figures, indent=2, default=str))
        print(table(figures, stages))
        return 0
    digest = source_digest()
    results: dict[str, Any] = {"machine": machine(), "load_start": os.getloadavg()[0], "digest_start": digest}
    results["command"] = " ".join([".venv/bin/python", "bench/offers_bench.py", *sys.argv[1:]])
    with tempfile.TemporaryDirectory(prefix="accord-offers-bench-") as tmp:
        work = Path(tmp)
        server = start_accord(work)
        try:
            with server.admin() as client:
                data = setup(client, server.url, server.auth)
                auth = f"Bearer {server.token}"
                for stage in stages:
                    runs: list[dict[str, Any]] = []
                    for run in range(args.runs):
                        file = templates(stage, data, client, work, run)
                        nonce = f"{stage}-{run}-{secrets.token_hex(3)}"
                        if args.warmup and run == 0 and stage != "redeem_single_use":
                            wrk(server.url, file, auth, nonce + "-w", args.connections, args.warmup)
                        drain(client)  # every run starts with the earlier runs' events processed
                        cpu0 = server.cpu_seconds()
                        figures = wrk(server.url, file, auth, nonce, args.connections, args.seconds)
                        figures["server_cpu_s_during"] = server.cpu_seconds() - cpu0
                        figures["load"] = os.getloadavg()[0]
                        # the run's cost includes processing the events it emitted, even when that ends after wrk
                        figures["drain_after_s"] = drain(client)
                        figures["server_cpu_s"] = server.cpu_seconds() - cpu0
                        runs.append(figures)
                        log(
                            f"{stage} run {run + 1}: {figures['rps']:,.0f} ops/s, p50 "
                            f"{figures['latency_p50_us'] / 1000:.1f} ms, p99 {figures['latency_p99_us'] / 1000:.1f} ms,"
                            f" errors {figures['errors']}"
                        )
                    results[stage] = runs
                results["checks"] = checks(client, data, results)
        finally:
            server.stop()
    results["digest_end"] = source_digest()
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, default=str))
    print(table(results, stages))
    return 0


def drain(client: httpx.Client, timeout: float = 300.0) -> float:
    """Wait until the server has processed every collected and emitted event; seconds waited."""
    started = time.monotonic()
    while client.get("/api/v1/health").json()["processing_lag"] > 0:
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"processing did not catch up within {timeout:.0f} s")
        time.sleep(0.05)
    return time.monotonic() - started


def checks(client: httpx.Client, data: dict[str, Any], results: dict[str, Any]) -> dict[str, Any]:
    """Counts after the load: redemptions recorded == successful redeem requests; ledgers sum to balances."""
    out: dict[str, Any] = {}
    for stage, offer in (("redeem", data["shared"]), ("redeem_single_use", data["unique"])):
        if stage in results:
            ok = sum(r["requests"] - r["errors"] for r in results[stage])
            warm = 0 if stage == "redeem_single_use" else None
            recorded = client.get(f"/api/v1/offers/{offer['id']}").json()["redemptions"]
            out[stage] = {"successful_requests_measured": ok, "redemptions_recorded_incl_warmup": recorded}
            if warm == 0:  # requests still in flight when wrk stops are redeemed but not counted by wrk
                out[stage]["recorded_minus_measured"] = recorded - ok
    sums = []
    for pid in data["profiles"][:20]:
        balance = client.get(f"/api/v1/loyalty/{pid}").json()["balance"]
        ledger = client.get(f"/api/v1/loyalty/{pid}/ledger", params={"limit": 1000}).json()
        sums.append(len(ledger) == 1000 or balance == sum(e["points"] for e in ledger))
    out["ledger_sums_to_balance_first_20_customers"] = all(sums)
    return out


def table(results: dict[str, Any], stages: list[str]) -> str:
    rows = [
        "| operation | ops/s median (min–max) | p50 ms | p99 ms | non-2xx/errors | CPU ms per op | load avg |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for stage in stages:
        runs = results.get(stage) or []
        if not runs:
            continue
        rps = [r["rps"] for r in runs]
        p50 = statistics.median(r["latency_p50_us"] / 1000 for r in runs)
        p99 = statistics.median(r["latency_p99_us"] / 1000 for r in runs)
        cpu = statistics.median(r["server_cpu_s"] / max(r["requests"], 1) * 1000 for r in runs)
        load = statistics.median(r["load"] for r in runs)
        errors = sum(r["errors"] for r in runs)
        rows.append(
            f"| {stage} | {statistics.median(rps):,.0f} ({min(rps):,.0f}–{max(rps):,.0f}) | {p50:.1f} | {p99:.1f} "
            f"| {errors} | {cpu:.2f} | {load:.0f} |"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
