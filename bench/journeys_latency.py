"""Journey trigger latency under ingestion load: from a triggering event's 200 to the journey's first step.

    .venv/bin/python bench/journeys_latency.py                          # offered loads 0, 1,000 and 3,000 events/s
    .venv/bin/python bench/journeys_latency.py --loads 0,2000 --seconds 20

For each offered load it starts `accord serve` (embedded default, processing on, fresh ACCORD_HOME), applies a
journey triggered by the event `Bench Trigger` whose first step is a goal checkpoint, and then, for SECONDS:
- background load: /v1/batch requests of 100 realistic messages (bench/payloads.py, new anonymous ids and
  messageIds every request) paced to the offered rate by LOAD_THREADS threads;
- triggers: one /v1/track `Bench Trigger` every TRIGGER_EVERY seconds for a new user, with its sequence number in
  the properties; the client notes the wall-clock time when the 200 arrives (the event is durable from then on).
A warm-up trigger is stepped before the clock starts. After the load it waits until processing and the journey
have caught up, then reads each instance's entry time and the time of its first step from the state store
(SQLite, read-only) and reports p50/p95/p99/max of
  trigger latency = first step's time - the trigger's acknowledgement
(both clocks are this machine's). The first step runs as soon as the instance enters, so this is the time for the
event to be processed (journal -> identity -> event store), fed to the journeys listener, entered, and stepped.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import payloads  # noqa: E402  (bench/ is not a package)
import run as intake  # noqa: E402

JOURNEY = {
    "name": "latency",
    "trigger": {"event": "Bench Trigger"},
    "entry": {"reentry": "always"},
    "steps": [{"id": "first", "goal": "reached"}],
}
TRIGGER_EVERY = 0.05
LOAD_THREADS = 4


def _load(url: str, auth: str, rate: float, stop: threading.Event, counts: list[int], nonce: str) -> None:
    """Send /v1/batch bodies of 100 messages at about RATE / LOAD_THREADS messages per second from this thread."""
    templates = payloads.batch_templates(8, 100, seed=len(nonce))
    interval = 100 * LOAD_THREADS / rate
    n = 0
    with httpx.Client(base_url=url, headers={"Authorization": auth, "Content-Type": "application/json"}) as client:
        next_at = time.monotonic()
        while not stop.is_set():
            body = templates[n % len(templates)].replace(payloads.PLACEHOLDER, f"{nonce}-{n}")
            n += 1
            response = client.post("/v1/batch", content=body, timeout=60)
            if response.status_code == 200:
                counts[0] += 100
            else:
                counts[1] += 1
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                stop.wait(delay)
            else:
                next_at = time.monotonic()  # behind: send at once, do not build up a burst


def _triggers(url: str, auth: str, stop: threading.Event, acked: dict[int, float]) -> None:
    with httpx.Client(base_url=url, headers={"Authorization": auth}) as client:
        seq = 0
        while not stop.is_set():
            seq += 1
            message = {
                "userId": f"latency-{seq}",
                "event": "Bench Trigger",
                "properties": {"bench_seq": seq},
                "messageId": f"trigger-{seq}",
            }
            response = client.post("/v1/track", json=message, timeout=60)
            if response.status_code == 200:
                acked[seq] = time.time()
            stop.wait(TRIGGER_EVERY)


def one_load(workdir: Path, rate: float, seconds: float) -> dict[str, Any]:
    server = intake.start_accord(workdir)
    try:
        with server.admin() as admin:
            admin.post("/api/v1/journeys", json=JOURNEY).raise_for_status()
            admin.post("/api/v1/journeys/latency/start").raise_for_status()
        _warm_up(server)
        stop = threading.Event()
        counts = [0, 0]
        acked: dict[int, float] = {}
        threads = [threading.Thread(target=_triggers, args=(server.url, server.auth, stop, acked))]
        if rate > 0:
            threads += [
                threading.Thread(target=_load, args=(server.url, server.auth, rate, stop, counts, f"l{i}-{rate}"))
                for i in range(LOAD_THREADS)
            ]
        cpu0, t0 = server.cpu_seconds(), time.monotonic()
        for thread in threads:
            thread.start()
        time.sleep(seconds)
        stop.set()
        for thread in threads:
            thread.join()
        load_s = time.monotonic() - t0
        cpu = server.cpu_seconds() - cpu0
        lag_at_end = httpx.get(f"{server.url}/api/v1/health").json()["processing_lag"]
        deadline = time.monotonic() + 600
        rows: list[tuple[str, str, str]] = []
        state = sqlite3.connect(f"file:{server.home / 'state.sqlite'}?mode=ro", uri=True)
        while time.monotonic() < deadline:
            rows = state.execute(
                "SELECT i.entry_properties, i.entered_at, t.at FROM journey_instances i "
                "JOIN journey_transitions t ON t.instance_id = i.id AND t.step_id = 'first'"
            ).fetchall()
            if sum(json.loads(r[0]).get("bench_seq") in acked for r in rows) >= len(acked):
                break
            time.sleep(0.5)
        state.close()
        entered, stepped = [], []
        for properties, entered_at, step_at in rows:
            seq = json.loads(properties).get("bench_seq")
            if seq in acked:
                entered.append(intake.utc_epoch(entered_at) - acked[seq])
                stepped.append(intake.utc_epoch(step_at) - acked[seq])
        return {
            "offered_events_per_s": rate,
            "load_events_per_s": counts[0] / load_s,
            "load_errors": counts[1],
            "triggers": len(acked),
            "stepped": len(stepped),
            "processing_lag_at_end": lag_at_end,
            "server_cpu_cores": cpu / load_s,
            "entry": _percentiles(entered),
            "first_step": _percentiles(stepped),
        }
    finally:
        server.stop()


def _warm_up(server: intake.Server) -> None:
    """One trigger, stepped, before measuring: the first request of a fresh server pays one-off start-up costs."""
    message = {"userId": "warm-up", "event": "Bench Trigger", "properties": {"bench_seq": 0}, "messageId": "warm-up"}
    httpx.post(f"{server.url}/v1/track", json=message, headers={"Authorization": server.auth}).raise_for_status()
    assert server.home is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with sqlite3.connect(f"file:{server.home / 'state.sqlite'}?mode=ro", uri=True) as state:
            if state.execute("SELECT count(*) FROM journey_transitions").fetchone()[0]:
                return
        time.sleep(0.1)
    raise RuntimeError("the warm-up trigger never reached the journey")


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return {"p50_ms": statistics.median(ordered) * 1000, "p95_ms": at(0.95), "p99_ms": at(0.99), "max_ms": at(1.0)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", default="0,1000,3000", help="offered background loads, events/s, comma-separated")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--output", default=str(BENCH / "results" / "journeys_latency.json"))
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="accord-latency-") as tmp:
        for rate in (float(x) for x in args.loads.split(",")):
            result = one_load(Path(tmp), rate, args.seconds)
            results.append(result)
            first, entry = result["first_step"], result["entry"]
            print(
                f"offered {rate:>7,.0f} ev/s  achieved {result['load_events_per_s']:>7,.0f} ev/s  "
                f"triggers {result['triggers']:>4} stepped {result['stepped']:>4}  "
                f"first step p50 {first.get('p50_ms', 0):7.0f} p95 {first.get('p95_ms', 0):7.0f} "
                f"p99 {first.get('p99_ms', 0):7.0f} max {first.get('max_ms', 0):7.0f} ms  "
                f"(entry p99 {entry.get('p99_ms', 0):.0f} ms, lag at end {result['processing_lag_at_end']}, "
                f"server {result['server_cpu_cores']:.2f} cores)",
                flush=True,
            )
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps({"machine": intake.machine(), "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
