"""Intake benchmark: Accord's /v1/batch and /v1/track against the bare server stack, processing, file import.

`make bench` runs this file. It starts every server itself (fresh temporary ACCORD_HOME per run), drives it with
wrk (bench/wrk_post.lua: every request carries new, unique messageIds), and prints a markdown table of medians.
Results go to bench/results/latest.json. See docs/benchmarks.md for the method and the meaning of the numbers.

    .venv/bin/python bench/run.py            # 3 runs x 10 s per measurement (about 20 minutes)
    .venv/bin/python bench/run.py --quick    # smoke run: 1 run x 3 s
    .venv/bin/python bench/run.py --sweep    # also try 16/32/64 connections (1 run each) before the main runs
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import csv
import dataclasses
import hashlib
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
    write_key: str = ""
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


def utc_epoch(text: str) -> float:
    """Seconds since the epoch of a stored time (the state store keeps UTC; SQLite returns it without a zone)."""
    value = datetime.fromisoformat(text)
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


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
            key = server.write_key = response.json()["write_key"]
        server.auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    except BaseException:
        server.stop()
        raise
    return server


def start_bare(workdir: Path, front: str) -> Server:
    """bench/bare_server.py: the same uvicorn stack, decoding only, behind Litestar or a plain ASGI callable."""
    port = free_port()
    logfile = workdir / f"bare-{front}-{port}.log"
    with open(logfile, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(BENCH / "bare_server.py"), "--port", str(port), "--front", front],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server("bare" if front == "litestar" else "asgi", proc, f"http://127.0.0.1:{port}", logfile=logfile)
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
    """The `accord import orders` command exists (src/accord/cli/imports.py)."""
    import importlib.util

    return importlib.util.find_spec("accord.cli.imports") is not None


def _accord_import(path: Path, home: Path) -> tuple[float, int, dict[str, Any], str]:
    """Run `accord import orders PATH --channel store --format json` on HOME: wall seconds, exit code, summary."""
    env = {**os.environ, "ACCORD_HOME": str(home), "ACCORD_ADMIN_TOKEN": "bench"}
    cmd = [str(BIN / "accord"), "import", "orders", str(path), "--channel", "store", "--format", "json"]
    t0 = time.monotonic()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.monotonic() - t0
    try:
        summary: dict[str, Any] = json.loads(out.stdout)
    except ValueError:
        summary = {}
    return wall, out.returncode, summary, (out.stdout + out.stderr)[-2000:]


def bench_import(workdir: Path, rows: int, runs: int) -> dict[str, Any]:
    """Time `accord import orders FILE --channel store` with no server running, on a fresh ACCORD_HOME per run.

    With no server the command writes the journal, then processes it into the event store before it exits.
    Its own summary gives the import's rows/s (reading, validating, journalling); the wall clock minus that and
    minus the fixed start-up cost (the same command on a header-only file) is the time spent processing.
    """
    path = workdir / f"orders-{rows}.csv"
    orders = write_orders_csv(path, rows)
    empty = workdir / "orders-empty.csv"
    write_orders_csv(empty, 0)
    result: dict[str, Any] = {"rows": rows, "orders": orders, "runs": []}
    for run in range(1, runs + 1):
        homes = [Path(tempfile.mkdtemp(prefix="accord-import-", dir=workdir)) for _ in range(2)]
        try:
            overhead, _, _, _ = _accord_import(empty, homes[0])
            wall, code, summary, tail = _accord_import(path, homes[1])
            env = {**os.environ, "ACCORD_HOME": str(homes[1]), "ACCORD_ADMIN_TOKEN": "bench"}
            stats = subprocess.run(
                [str(BIN / "accord"), "stats", "--format", "json"], env=env, capture_output=True, text=True, check=False
            )
        finally:
            for home in homes:
                shutil.rmtree(home, ignore_errors=True)
        entry: dict[str, Any] = {"run": run, "exit_code": code, "wall_s": wall, "startup_s": overhead}
        if summary:
            entry.update(
                import_s=summary["seconds"],
                import_rows_per_s=summary["rows_per_second"],
                accepted=summary["accepted"],
                rejected_rows=summary["rejected_rows"],
                processed=summary.get("processed"),
                processing_s=max(wall - summary["seconds"] - overhead, 0.0),
            )
        else:
            entry["output_tail"] = tail
        with contextlib.suppress(ValueError):
            data = json.loads(stats.stdout)
            entry.update(events=data.get("events"), processing_lag=data.get("processing_lag"))
        log(f"  import    run {run} {entry}")
        result["runs"].append(entry)
    done = [r for r in result["runs"] if "import_rows_per_s" in r]
    result["import_rows_per_s"] = [r["import_rows_per_s"] for r in done]
    result["wall_rows_per_s"] = [rows / r["wall_s"] for r in done]
    result["processing_s"] = [r["processing_s"] for r in done]
    result["processing_events_per_s"] = [r["accepted"] / r["processing_s"] for r in done if r["processing_s"] > 0]
    result["ok"] = bool(done) and all(
        r["exit_code"] == 0 and r.get("events") == r["accepted"] == orders and r.get("processing_lag") == 0
        for r in done
    )
    return result


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


SERVERS = ("accord", "bare", "asgi")  # Accord, bare Litestar stack, bare plain-ASGI stack


def summarise(ms: list[Measurement]) -> dict[str, Any]:
    """Per server: the figures of every run; ratios Accord/bare per run (run N of each server back to back)."""
    by = {name: [m for m in ms if m.server == name] for name in SERVERS}
    out: dict[str, Any] = {"connections": ms[0].connections if ms else None}
    for name, runs in by.items():
        out[name] = {
            "rps": [m.rps for m in runs],
            "msgs": [m.messages_per_s for m in runs],
            "p50": [m.p50_ms for m in runs],
            "p99": [m.p99_ms for m in runs],
            # CPU cores the server process tree (server + processing worker) used during the measured seconds
            "cores": [m.server_cpu_s / m.seconds for m in runs],
        }
    for name in ("bare", "asgi"):
        pairs = zip(by["accord"], by[name], strict=False)
        out[f"ratio_{name}"] = [a.rps / b.rps for a, b in pairs if b.rps]
    out["errors"] = sum(m.errors for m in ms)
    drains = [m.checks for m in by["accord"] if m.checks]
    if drains:
        out["processing"] = {
            "drain_events_per_s": [d["drain_events_per_s"] for d in drains if d.get("drain_events_per_s")],
            "end_to_end_events_per_s": [d["end_to_end_events_per_s"] for d in drains],
            "drain_s": [d["drain_s"] for d in drains],
            "backlog": [float(d["backlog_at_end_of_load"]) for d in drains],
            "unique_ids_ok": all(d.get("unique_ids_ok") for d in drains),
        }
    return out


def _pct(values: list[float]) -> str:
    return f"{med(values):.0%}" if values else "—"


def table(results: dict[str, Any]) -> str:
    rows = [
        "| measure | Accord | bare Litestar | bare ASGI | Accord / Litestar | Accord / ASGI |",
        "|---|---:|---:|---:|---:|---:|",
    ]

    def line(label: str, s: dict[str, Any], key: str) -> None:
        cells = [fmt_range(s[name][key]) if s[name][key] else "—" for name in SERVERS]
        rows.append(f"| {label} | {' | '.join(cells)} | {_pct(s['ratio_bare'])} | {_pct(s['ratio_asgi'])} |")

    def latency(label: str, s: dict[str, Any]) -> None:
        cells = [
            f"{med(s[name]['p50']):.1f} / {med(s[name]['p99']):.1f}" if s[name]["p50"] else "—" for name in SERVERS
        ]
        rows.append(f"| {label} | {' | '.join(cells)} | | |")

    summary = results["summary"]
    if b := summary.get("batch"):
        line(f"`/v1/batch` messages/s (100 per request, c={b['connections']})", b, "msgs")
        latency("`/v1/batch` latency p50 / p99 (ms)", b)
    if b := summary.get("batch_processing_off"):
        line(f"`/v1/batch` messages/s, ACCORD_PROCESSING=off (c={b['connections']})", b, "msgs")
    if t := summary.get("track"):
        line(f"`/v1/track` requests/s (1 message, c={t['connections']})", t, "rps")
        latency("`/v1/track` latency p50 / p99 (ms)", t)
    if t := summary.get("track_processing_off"):
        line(f"`/v1/track` requests/s, ACCORD_PROCESSING=off (c={t['connections']})", t, "rps")
    if (b := summary.get("batch")) and (p := b.get("processing")):
        rows.append(
            f"| processing throughput: backlog drain after the batch load (events/s) | "
            f"{fmt_range(p['drain_events_per_s'])} | | | | |"
        )
        rows.append(
            f"| processing, start of batch load to all processed (events/s) | "
            f"{fmt_range(p['end_to_end_events_per_s'])} | | | | |"
        )
        rows.append(
            f"| backlog at end of batch load (messages) / time to drain it (s) | "
            f"{med(p['backlog']):,.0f} / {med(p['drain_s']):.0f} | | | | |"
        )
    imp = results.get("import")
    if imp and imp.get("import_rows_per_s"):
        rows.append(
            f"| `accord import orders`, {imp['rows']:,}-row POS CSV: rows/s of the import (its own summary) | "
            f"{fmt_range(imp['import_rows_per_s'])} | | | | |"
        )
        rows.append(
            f"| … then processing its {imp['orders']:,} orders into the event store (s; events/s) | "
            f"{med(imp['processing_s']):.1f} s; {med(imp['processing_events_per_s']):,.0f} | | | | |"
        )
        rows.append(
            f"| … whole command, wall clock incl. start-up and processing (rows/s) | "
            f"{fmt_range(imp['wall_rows_per_s'])} | | | | |"
        )
    elif imp:
        rows.append(f"| `accord import orders` | {imp.get('skipped', 'failed: see latest.json')} | | | | |")
    return "\n".join(rows)


def sweep_table(ms: list[Measurement]) -> str:
    """One run per connection count: requests/s and p99 of each server."""
    rows = [
        "| stage | connections | Accord req/s (p99 ms) | bare Litestar req/s (p99 ms) | bare ASGI req/s (p99 ms) |",
        "|---|---:|---:|---:|---:|",
    ]
    keys = sorted({(m.endpoint, m.connections) for m in ms}, key=lambda k: ([m.endpoint for m in ms].index(k[0]), k[1]))
    for stage, c in keys:
        cells = []
        for name in SERVERS:
            found = [m for m in ms if (m.endpoint, m.connections, m.server) == (stage, c, name)]
            cells.append(f"{found[0].rps:,.0f} ({found[0].p99_ms:.0f})" if found else "—")
        rows.append(f"| {stage} | {c} | {' | '.join(cells)} |")
    return "\n".join(rows)


def notes(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        f"{m['date']} · {m['nproc']} CPUs ({m['cpu']}) · Python {m['python']} · {m['wrk']} · "
        f"{results['runs']} run(s) × {results['seconds']:g} s per figure, median (min–max) · "
        f"load average at start {results['load_before']:.2f}"
    ]
    b = results["summary"].get("batch", {}).get("processing")
    if b:
        lines.append(
            "unique messageIds verified (after processing, events == accepted_messages ≈ wrk requests × 100): "
            + ("yes" if b["unique_ids_ok"] else "NO — see bench/results/latest.json")
        )
    imp = results.get("import")
    if imp and "ok" in imp:
        lines.append(
            "import checked (exit 0, every order an event, processing lag 0): "
            + ("yes" if imp["ok"] else "NO — see bench/results/latest.json")
        )
    errors = sum(s["errors"] for s in results["summary"].values())
    if errors:
        lines.append(f"WARNING: {errors} wrk errors (non-2xx or socket errors) — see bench/results/latest.json")
    if results["source_digest"] != results.get("source_digest_after"):
        lines.append("WARNING: src/accord changed while the benchmark ran; the runs measured different code")
    return "\n".join(lines)


def source_digest() -> str:
    """A digest of src/accord/**/*.py, to tell which code a result measured (and whether it changed meanwhile)."""
    digest = hashlib.sha256()
    for path in sorted((ROOT / "src" / "accord").rglob("*.py")):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


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
        "source_digest": source_digest(),
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

        def one(stage: str, run: int, connections: int, seconds: float, wait: bool = True) -> list[Measurement]:
            endpoint, templates, per_request, processing, drain = plan[stage]
            drain = drain and wait
            out = []
            for name in SERVERS:
                if name == "accord":
                    server = start_accord(work, processing)
                else:
                    server = start_bare(work, "litestar" if name == "bare" else "asgi")
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
            for stage in ("batch", "batch-off", "track", "track-off"):
                if stage not in stages:
                    continue
                for c in (16, 32, 64):
                    sweep += [
                        dataclasses.replace(m, endpoint=stage) for m in one(stage, 0, c, args.seconds, wait=False)
                    ]
            results["sweep"] = [vars(m) for m in sweep]
            results["sweep_table"] = sweep_table(sweep)

        for stage in ("batch", "batch-off", "track", "track-off"):
            if stage not in stages or args.runs < 1:
                continue
            ms: list[Measurement] = []
            for run in range(1, args.runs + 1):
                ms += one(stage, run, args.connections, args.seconds)
            results["measurements"] += [vars(m) for m in ms]
            key = stage.replace("-off", "_processing_off")
            results["summary"][key] = summarise(ms)

        if "import" in stages and args.runs >= 1:
            if importer_available():
                rows = 30_000 if args.quick else IMPORT_ROWS
                results["import"] = bench_import(work, rows, args.runs)
            else:
                results["import"] = {"skipped": "skipped: `accord import` is not installed"}
                log("  import: skipped — accord.cli.imports is missing")

    results["source_digest_after"] = source_digest()
    results["table"] = table(results)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2, default=str) + "\n")
    if "sweep_table" in results:
        print("Connection sweep (1 run each):\n")
        print(results["sweep_table"])
        print()
    print(table(results))
    print()
    print(notes(results))
    print(f"\n(results: {args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
