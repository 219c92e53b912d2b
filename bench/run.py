"""Intake benchmark: Accord's /v1/batch and /v1/track against the bare server stack, processing, file import.

`make bench` runs this file. It starts every server itself (fresh temporary ACCORD_HOME per run), drives it with
wrk (bench/wrk_post.lua: every request carries new, unique messageIds), and prints a markdown table of medians.
Results go to bench/results/latest.json. See docs/benchmarks.md for the method and the meaning of the numbers.

    .venv/bin/python bench/run.py            # 3 runs x 10 s per measurement (about 10 minutes)
    .venv/bin/python bench/run.py --quick    # smoke run: 1 run x 3 s
    .venv/bin/python bench/run.py --sweep    # also try 16/32/64 connections (1 run each) before the main runs
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import csv
import json
import os
import platform
import random
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

import payloads  # noqa: E402  (bench/ is not a package)

LUA = BENCH / "wrk_post.lua"
RESULTS = BENCH / "results" / "latest.json"
BIN = Path(sys.executable).parent
BATCH_SIZE = 100
DEFAULT_CONNECTIONS = 16
IMPORT_ROWS = 300_000


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------------------
# Servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A server process this script started (in its own process group, so its worker goes with it)."""

    name: str
    proc: subprocess.Popen[bytes]
    url: str
    home: Path | None = None
    token: str = ""
    auth: str = "-"
    logfile: Path | None = None

    def admin(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=60.0)

    def cpu_seconds(self) -> float:
        """User+system CPU of the server process and its children (the processing worker), so far."""
        return _tree_cpu(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                log(f"  {self.name}: no exit after SIGINT, killing its process group")
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # the group this script created for this server
        self.proc.wait(timeout=30)
        if self.home is not None:
            shutil.rmtree(self.home, ignore_errors=True)


def _tree_cpu(root: int) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            total += stats[pid][1]
        todo.extend(child for child, (ppid, _) in stats.items() if ppid == pid)
    return total


def _wait_until(check: Callable[[], bool], proc: subprocess.Popen[bytes], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} before it was ready")
        with contextlib.suppress(httpx.HTTPError):
            if check():
                return
        time.sleep(0.2)
    raise RuntimeError(f"{what} was not ready within {timeout:.0f} s")


def start_accord(workdir: Path, processing: bool = True) -> Server:
    """`accord serve` on a fresh ACCORD_HOME, with a web source whose write key the load uses."""
    home = Path(tempfile.mkdtemp(prefix="accord-bench-", dir=workdir))
    port = free_port()
    token = "bench-" + secrets.token_hex(8)
    env = {
        **os.environ,
        "ACCORD_HOME": str(home),
        "ACCORD_PORT": str(port),
        "ACCORD_ADMIN_TOKEN": token,
        "ACCORD_LOG_LEVEL": "warning",
        "ACCORD_PROCESSING": "on" if processing else "off",
    }
    logfile = workdir / f"accord-{port}.log"
    with open(logfile, "wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "accord"), "serve"], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Server("accord", proc, f"http://127.0.0.1:{port}", home, token, logfile=logfile)
    try:
        _wait_until(
            lambda: httpx.get(f"{server.url}/api/v1/health", timeout=2).status_code == 200, proc, 90, "accord serve"
        )
        with server.admin() as client:
            response = client.post("/api/v1/sources", json={"name": "bench-web", "channel": "web"})
            response.raise_for_status()
            key = response.json()["write_key"]
        server.auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    except BaseException:
        server.stop()
        raise
    return server


def start_bare(workdir: Path) -> Server:
    """bench/bare_server.py: the same Litestar/uvicorn stack, decoding only."""
    port = free_port()
    logfile = workdir / f"bare-{port}.log"
    with open(logfile, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(BENCH / "bare_server.py"), "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server("bare", proc, f"http://127.0.0.1:{port}", logfile=logfile)
    try:
        _wait_until(lambda: httpx.get(f"{server.url}/health", timeout=2).status_code == 200, proc, 60, "bare server")
    except BaseException:
        server.stop()
        raise
    return server


# ---------------------------------------------------------------------------------------------------------------
# Load


def wrk(url: str, templates: Path, auth: str, nonce: str, connections: int, seconds: float) -> dict[str, Any]:
    """One wrk run (1 thread); the figures printed by wrk_post.lua's done()."""
    cmd = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "--timeout",
        "30s",
        "-s",
        str(LUA),
        url,
        "--",
        str(templates),
        auth,
        nonce,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    match = re.search(r"^BENCH_JSON (\{.*\})$", out.stdout, re.M)
    if out.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stderr.strip()} {out.stdout[-500:]}")
    result: dict[str, Any] = json.loads(match.group(1))
    result["errors"] = sum(v for k, v in result.items() if k.startswith("errors_"))
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


@dataclass
class Measurement:
    """One measured wrk run against one server."""

    server: str
    endpoint: str
    connections: int
    run: int
    rps: float
    messages_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    load: float
    seconds: float
    server_cpu_s: float = 0.0
    checks: dict[str, Any] = field(default_factory=dict)


def measure(
    server: Server,
    endpoint: str,
    templates: Path,
    connections: int,
    seconds: float,
    warmup: float,
    run: int,
    per_request: int,
    drain: bool,
    drain_timeout: float,
) -> Measurement:
    """Warm up, measure, and for Accord (when DRAIN) wait for the processing backlog and check the counts."""
    url = f"{server.url}/v1/{endpoint}"
    load = os.getloadavg()[0]
    warm = wrk(url, templates, server.auth, f"w{run}x{secrets.token_hex(3)}", connections, warmup)
    events_before = _stats(server)["events"] if drain else 0
    cpu0, t0 = server.cpu_seconds(), time.monotonic()
    res = wrk(url, templates, server.auth, f"m{run}x{secrets.token_hex(3)}", connections, seconds)
    t_end = time.monotonic()
    cpu = server.cpu_seconds() - cpu0
    m = Measurement(
        server.name,
        endpoint,
        connections,
        run,
        res["rps"],
        res["rps"] * per_request,
        res["latency_p50_us"] / 1000,
        res["latency_p99_us"] / 1000,
        res["errors"] + warm["errors"],
        load,
        t_end - t0,
        cpu,
    )
    if drain:
        m.checks = _drain(server, events_before, t0, t_end, drain_timeout)
        sent = (warm["requests"] + res["requests"]) * per_request
        accepted = m.checks["accepted_messages"]
        # wrk counts completed requests; up to `connections` more per wrk run were in flight when it stopped.
        m.checks["requests_x_messages"] = sent
        m.checks["unique_ids_ok"] = (
            m.checks["drained"]
            and m.checks["events"] == accepted
            and sent <= accepted <= sent + 2 * connections * per_request
            and m.checks["rejected_messages"] == 0
        )
    return m


def _stats(server: Server) -> dict[str, Any]:
    with server.admin() as client:
        response = client.get("/api/v1/stats")
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data


def _drain(server: Server, events_before: int, t0: float, t_end: float, timeout: float) -> dict[str, Any]:
    """Poll until processing_lag is 0; the processing figures of this run."""
    at_end = _stats(server)
    t_stats = time.monotonic()
    deadline = t_stats + timeout
    lag = at_end["processing_lag"]
    with httpx.Client(base_url=server.url, timeout=30) as client:
        while lag > 0 and time.monotonic() < deadline:
            time.sleep(0.25)
            lag = client.get("/api/v1/health").json()["processing_lag"]
    t_done = time.monotonic()
    final = _stats(server)
    drain_s = t_done - t_stats
    processed_during_drain = final["events"] - at_end["events"]
    return {
        "drained": lag == 0,
        "events": final["events"],
        "accepted_messages": final["accepted_messages"],
        "rejected_messages": final["rejected_messages"],
        "processor_error": final.get("processor_error"),
        "backlog_at_end_of_load": final["accepted_messages"] - at_end["events"],
        "drain_s": drain_s,
        # the worker alone, after intake stopped: the backlog it had left, over the time it took
        "drain_events_per_s": processed_during_drain / drain_s if drain_s > 0 else None,
        # from the start of the measured load until every message is in the event store
        "end_to_end_events_per_s": (final["events"] - events_before) / (t_done - t0),
        "load_s": t_end - t0,
    }


# ---------------------------------------------------------------------------------------------------------------
# File import (accord import orders)


def write_orders_csv(path: Path, rows: int, seed: int = 5) -> int:
    """A POS export: one line per order line, ~2.5 lines per order. Returns the number of orders."""
    rng = random.Random(seed)
    start = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
    header = ["order_id", "store_id", "ordered_at", "loyalty_card", "email", "phone"]
    header += ["sku", "quantity", "unit_price", "currency"]
    orders = written = 0
    with open(path, "w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(header)
        while written < rows:
            orders += 1
            customer = rng.randrange(50_000)
            known = rng.random()
            card = f"LC{customer:09d}" if known < 0.6 else ""
            email = f"customer.{customer}@example.pl" if 0.3 < known < 0.8 else ""
            phone = f"+4860{customer:07d}" if 0.5 < known < 0.7 else ""
            at = (start + timedelta(seconds=orders * 17 + rng.randrange(600))).isoformat(timespec="seconds")
            store = f"store-{rng.randrange(1, 41):03d}"
            for _ in range(min(rng.choice((1, 1, 2, 2, 3, 3, 4, 4)), rows - written)):
                out.writerow(
                    [
                        f"POS-{orders:08d}",
                        store,
                        at,
                        card,
                        email,
                        phone,
                        f"SKU-{rng.randrange(5000):05d}-{rng.choice('SMLX')}",
                        rng.randint(1, 3),
                        f"{rng.uniform(5, 400):.2f}",
                        "PLN",
                    ]
                )
                written += 1
    return orders


def importer_available() -> bool:
    """The `accord import orders` command exists (another engineer is writing it)."""
    import importlib.util

    return importlib.util.find_spec("accord.cli.imports") is not None


def bench_import(workdir: Path, rows: int) -> dict[str, Any]:
    """Time `accord import orders FILE --channel store` on a fresh ACCORD_HOME with no server running.

    TODO(lead): this stage was written before the importer existed; check the command line and the summary
    parsing against the real `accord import orders` once it lands (the raw output is kept in the results).
    """
    home = Path(tempfile.mkdtemp(prefix="accord-import-", dir=workdir))
    try:
        path = workdir / f"orders-{rows}.csv"
        orders = write_orders_csv(path, rows)
        env = {**os.environ, "ACCORD_HOME": str(home), "ACCORD_ADMIN_TOKEN": "bench"}
        t0 = time.monotonic()
        out = subprocess.run(
            [str(BIN / "accord"), "import", "orders", str(path), "--channel", "store"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.monotonic() - t0
        result: dict[str, Any] = {
            "rows": rows,
            "orders": orders,
            "exit_code": out.returncode,
            "wall_s": wall,
            "wall_rows_per_s": rows / wall,
            "output_tail": (out.stdout + out.stderr)[-2000:],
        }
        # the command's own figure, if it prints one (e.g. "... 123,456 rows/s")
        match = re.search(r"([\d,.]+)\s*rows/s", out.stdout + out.stderr)
        if match:
            result["reported_rows_per_s"] = float(match.group(1).replace(",", ""))
        t1 = time.monotonic()
        stats = subprocess.run(
            [str(BIN / "accord"), "stats", "--format", "json"], env=env, capture_output=True, text=True, check=False
        )
        with contextlib.suppress(ValueError):
            data = json.loads(stats.stdout)
            result.update(events=data.get("events"), processing_lag=data.get("processing_lag"))
        result["stats_s"] = time.monotonic() - t1
        return result
    finally:
        shutil.rmtree(home, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------------------
# Reporting


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False).stdout.split("\n")[0]
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "wrk": wrk_version.split(" Copyright")[0].strip(),
    }


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def fmt_range(values: list[float], digits: int = 0) -> str:
    if not values:
        return "—"
    text = f"{med(values):,.{digits}f}"
    if len(values) > 1:
        text += f" ({min(values):,.{digits}f}–{max(values):,.{digits}f})"
    return text


def summarise(ms: list[Measurement], endpoint: str) -> dict[str, Any]:
    acc = [m for m in ms if m.endpoint == endpoint and m.server == "accord"]
    bare = [m for m in ms if m.endpoint == endpoint and m.server == "bare"]
    ratios = [a.rps / b.rps for a, b in zip(acc, bare, strict=False) if b.rps]
    drains = [m.checks for m in acc if m.checks]
    return {
        "accord_rps": [m.rps for m in acc],
        "bare_rps": [m.rps for m in bare],
        "accord_msgs": [m.messages_per_s for m in acc],
        "bare_msgs": [m.messages_per_s for m in bare],
        "accord_p50": [m.p50_ms for m in acc],
        "accord_p99": [m.p99_ms for m in acc],
        "bare_p50": [m.p50_ms for m in bare],
        "bare_p99": [m.p99_ms for m in bare],
        # CPU cores the server process tree (server + processing worker) used during the measured seconds
        "accord_cores": [m.server_cpu_s / m.seconds for m in acc],
        "bare_cores": [m.server_cpu_s / m.seconds for m in bare],
        "ratios": ratios,
        "errors": sum(m.errors for m in acc + bare),
        "drain_events_per_s": [d["drain_events_per_s"] for d in drains if d.get("drain_events_per_s")],
        "end_to_end_events_per_s": [d["end_to_end_events_per_s"] for d in drains],
        "drain_s": [d["drain_s"] for d in drains],
        "backlog": [float(d["backlog_at_end_of_load"]) for d in drains],
        "unique_ids_ok": all(d.get("unique_ids_ok") for d in drains) if drains else None,
        "connections": acc[0].connections if acc else None,
    }


def table(results: dict[str, Any]) -> str:
    rows = [
        "| measure | Accord | bare stack (ceiling) | Accord / bare |",
        "|---|---:|---:|---:|",
    ]
    b = results["summary"].get("batch")
    if b:
        c = b["connections"]
        rows.append(
            f"| `/v1/batch` messages/s (100 per request, c={c}) | {fmt_range(b['accord_msgs'])} | "
            f"{fmt_range(b['bare_msgs'])} | {med(b['ratios']):.1%} |"
        )
        rows.append(
            f"| `/v1/batch` requests/s | {fmt_range(b['accord_rps'])} | {fmt_range(b['bare_rps'])} | "
            f"{med(b['ratios']):.1%} |"
        )
        rows.append(
            f"| `/v1/batch` latency p50 / p99 (ms) | {med(b['accord_p50']):.1f} / {med(b['accord_p99']):.1f} | "
            f"{med(b['bare_p50']):.1f} / {med(b['bare_p99']):.1f} | |"
        )
        if b["drain_events_per_s"] or b["end_to_end_events_per_s"]:
            rows.append(
                f"| processing throughput, backlog drain after the load (events/s) | "
                f"{fmt_range(b['drain_events_per_s'])} | | |"
            )
            rows.append(
                f"| processing, start of load to fully processed (events/s) | "
                f"{fmt_range(b['end_to_end_events_per_s'])} | | |"
            )
            rows.append(
                f"| backlog left at end of load (messages) / drain time (s) | "
                f"{med(b['backlog']):,.0f} / {med(b['drain_s']):.1f} | | |"
            )
    off = results["summary"].get("batch_processing_off")
    if off:
        rows.append(
            f"| `/v1/batch` messages/s, processing off (intake alone, c={off['connections']}) | "
            f"{fmt_range(off['accord_msgs'])} | {fmt_range(off['bare_msgs'])} | {med(off['ratios']):.1%} |"
        )
    t = results["summary"].get("track")
    off = results["summary"].get("track_processing_off")
    if t:
        rows.append(
            f"| `/v1/track` requests/s (1 message, c={t['connections']}) | {fmt_range(t['accord_rps'])} | "
            f"{fmt_range(t['bare_rps'])} | {med(t['ratios']):.1%} |"
        )
        rows.append(
            f"| `/v1/track` latency p50 / p99 (ms) | {med(t['accord_p50']):.1f} / {med(t['accord_p99']):.1f} | "
            f"{med(t['bare_p50']):.1f} / {med(t['bare_p99']):.1f} | |"
        )
    if off:
        rows.append(
            f"| `/v1/track` requests/s, processing off (intake alone, c={off['connections']}) | "
            f"{fmt_range(off['accord_rps'])} | {fmt_range(off['bare_rps'])} | {med(off['ratios']):.1%} |"
        )
    imp = results.get("import")
    if imp and "wall_s" in imp:
        own = imp.get("reported_rows_per_s")
        rows.append(
            f"| `accord import orders` ({imp['rows']:,} rows) rows/s, wall clock"
            f"{f' (command reports {own:,.0f})' if own else ''} | {imp['wall_rows_per_s']:,.0f} | | |"
        )
    elif imp:
        rows.append(f"| `accord import orders` | {imp.get('skipped', '—')} | | |")
    return "\n".join(rows)


def notes(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        f"{m['date']} · {m['nproc']} CPUs ({m['cpu']}) · Python {m['python']} · {m['wrk']} · "
        f"{results['runs']} run(s) × {results['seconds']} s, median (min–max) · "
        f"load average at start {results['load_before']:.2f}"
    ]
    b = results["summary"].get("batch")
    if b and b["unique_ids_ok"] is not None:
        lines.append(
            "unique messageIds verified (events == accepted_messages ≈ requests × 100 after processing): "
            + ("yes" if b["unique_ids_ok"] else "NO — see bench/results/latest.json")
        )
    errors = sum(s["errors"] for s in results["summary"].values())
    if errors:
        lines.append(f"WARNING: {errors} wrk errors (non-2xx or socket errors) — see bench/results/latest.json")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description="Accord intake benchmark (see docs/benchmarks.md).")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 run x 3 s, smaller import")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per wrk run")
    parser.add_argument("--connections", type=int, default=DEFAULT_CONNECTIONS, help="wrk connections (-c)")
    parser.add_argument("--sweep", action="store_true", help="first try 16, 32 and 64 connections (1 run each)")
    parser.add_argument(
        "--stages",
        default="batch,batch-off,track,track-off,import",
        help="comma-separated: batch, track, import; batch-off, track-off: Accord with ACCORD_PROCESSING=off",
    )
    parser.add_argument("--drain-timeout", type=float, default=900.0, help="max seconds to wait for processing")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.quick:
        args.runs, args.seconds = 1, 3.0
    warmup = 1.0 if args.quick else 2.0
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2

    results: dict[str, Any] = {
        "machine": machine(),
        "runs": args.runs,
        "seconds": args.seconds,
        "warmup_seconds": warmup,
        "connections": args.connections,
        "load_before": os.getloadavg()[0],
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "measurements": [],
        "summary": {},
    }
    log(f"machine: {results['machine']}  load average: {os.getloadavg()}")
    with tempfile.TemporaryDirectory(prefix="accord-bench-") as tmp:
        work = Path(tmp)
        batch_file, track_file = work / "batch.txt", work / "track.txt"
        payloads.write_templates(str(batch_file), payloads.batch_templates(16, BATCH_SIZE))
        payloads.write_templates(str(track_file), payloads.track_templates(64))
        plan = {
            "batch": ("batch", batch_file, BATCH_SIZE, True, True),
            "batch-off": ("batch", batch_file, BATCH_SIZE, False, False),
            "track": ("track", track_file, 1, True, False),
            "track-off": ("track", track_file, 1, False, False),
        }

        def one(stage: str, run: int, connections: int, seconds: float) -> list[Measurement]:
            endpoint, templates, per_request, processing, drain = plan[stage]
            out = []
            for name in ("accord", "bare"):
                server = start_accord(work, processing) if name == "accord" else start_bare(work)
                try:
                    m = measure(
                        server,
                        endpoint,
                        templates,
                        connections,
                        seconds,
                        warmup,
                        run,
                        per_request,
                        drain and name == "accord",
                        args.drain_timeout,
                    )
                finally:
                    server.stop()
                extra = ""
                if m.checks:
                    c = m.checks
                    extra = (
                        f" | backlog {c['backlog_at_end_of_load']:,} drained in {c['drain_s']:.1f}s"
                        f" ({(c['drain_events_per_s'] or 0):,.0f} ev/s) unique_ids_ok={c['unique_ids_ok']}"
                    )
                log(
                    f"  {stage:9} run {run} {name:6} c={connections:<3} {m.rps:9,.1f} req/s "
                    f"{m.messages_per_s:11,.0f} msg/s p50 {m.p50_ms:7.1f} ms p99 {m.p99_ms:7.1f} ms "
                    f"server cpu {m.server_cpu_s / m.seconds:4.2f} cores load {m.load:4.2f} errors {m.errors}{extra}"
                )
                out.append(m)
            return out

        if args.sweep:
            sweep: list[Measurement] = []
            for stage in ("batch", "track"):
                if stage not in stages:
                    continue
                for c in (16, 32, 64):
                    sweep += one(stage, 0, c, args.seconds)
            results["sweep"] = [vars(m) for m in sweep]

        for stage in ("batch", "batch-off", "track", "track-off"):
            if stage not in stages:
                continue
            ms: list[Measurement] = []
            for run in range(1, args.runs + 1):
                ms += one(stage, run, args.connections, args.seconds)
            results["measurements"] += [vars(m) for m in ms]
            key = stage.replace("-off", "_processing_off")
            results["summary"][key] = summarise(ms, plan[stage][0])

        if "import" in stages:
            if importer_available():
                rows = 30_000 if args.quick else IMPORT_ROWS
                log(f"  import: accord import orders ({rows:,} rows)")
                results["import"] = bench_import(work, rows)
                log(f"  import: {results['import']}")
            else:
                # TODO(lead): enable once `accord import orders` lands (src/accord/cli/imports.py); the stage above
                # then runs by itself: bench_import() generates the POS CSV and times the command.
                results["import"] = {"skipped": "TODO: `accord import orders` not present yet"}
                log("  import: skipped — accord.cli.imports is not present yet (TODO stage in bench/run.py)")

    results["table"] = table(results)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(table(results))
    print()
    print(notes(results))
    print(f"\n(results: {args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
