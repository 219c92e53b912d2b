"""Event-to-membership latency through the whole server: HTTP intake, journal, identity, event store, segments.

bench/segments_stream.py times the segment stage alone (it hands the processor resolved slices). This bench runs
the real `accord serve` (embedded default, processing on, fresh ACCORD_HOME) and measures what a platform user
sees, from the shop's call of the Segment library to the membership change in the state store:

1. History: --profiles customers with ~5 events each over the past year (an identify with email and country,
   product views, orders; 30% bought in the last 50 days, 30% only 70-300 days ago, mostly in store, 40% only
   browsed), posted to /v1/batch and processed before the clock starts (an empty store is not realistic).
2. Segments, applied over the API: `buyers-60d` (an order in 60 days), `lapsed-buyers` (an order in 365 days,
   none in 60) and `win-back` (the five-condition segment of the segments issue: country PL/DK, >= 2 store orders
   in 365 days, a product view in 30 days, no order in 60, lifetime revenue >= 100.00).
3. Load: --clients processes, each with its own analytics-python Client (the official Segment library, default
   batching: 100 messages or 0.5 s per request), call the library at --rate events/s in total for --seconds: 62%
   product views and 8% cart adds of known customers, 12% page views of new anonymous visitors, 6% identifies of
   those visitors (70% as new customers, 30% as known recent buyers: a merge), 10% orders of known customers and
   2% of the new customers (so new profiles enter segments). Each process notes the wall-clock time of its call
   of each customer's first product view and first order.
4. A poller reads the membership feed (GET /api/v1/segments/changes) every --poll seconds and notes when each
   change first appeared; /api/v1/health gives the processing lag meanwhile.

Latency of a membership change = when the poller first saw it minus when the library was called for the event
that caused it: the customer's first order (buyers-60d entered, lapsed-buyers exited, win-back exited) or first
product view (win-back entered). It includes the library's batching, intake, the journal, identity resolution in
the worker process, staging into DuckDB and the segment runtime's evaluation and write, plus up to one poll
interval. The change's own `at` column is the wall clock when the evaluation that found it *began* (not the
event's time), so `at` minus the call time is also reported, as a lower bound; and so is the latency from the
server's 200 for that event (when the library's upload of it returned: durable in the journal), which leaves out
the library's batching. Changes are mapped to customers by
the identity graph's user ids (read-only from the state store after the run); a change whose cause was called
after its evaluation began (a time-driven re-evaluation, a merge) is counted as unattributed and left out, as are
those caused in the first --warmup seconds. Server CPU covers the server process and its worker.

    .venv/bin/python bench/segments_e2e.py --rate 1000 --seconds 10                   # a quick check
    .venv/bin/python bench/segments_e2e.py --profiles 100000 --rate 2000 --seconds 60 --format json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import zlib
from collections import Counter, deque
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import Any

import httpx
import msgspec

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import payloads  # noqa: E402  (bench/ is not a package)
import run as intake  # noqa: E402

SEGMENTS: list[dict[str, Any]] = [
    {"name": "buyers-60d", "rule": {"event": "Order Completed", "within": "60d"}},
    {
        "name": "lapsed-buyers",
        "rule": {
            "all": [
                {"event": "Order Completed", "within": "365d"},
                {"not": {"event": "Order Completed", "within": "60d"}},
            ]
        },
    },
    {
        "name": "win-back",
        "rule": {
            "all": [
                {"trait": "country", "in": ["PL", "DK"]},
                {"event": "Order Completed", "channel": "store", "within": "365d", "count": {"gte": 2}},
                {"event": "Product Viewed", "within": "30d"},
                {"not": {"event": "Order Completed", "within": "60d"}},
                {"computed": "lifetime_revenue", "gte": 10000},
            ]
        },
    },
]
# (segment, change) -> the customer's first event of this kind (in the run) caused it
TRIGGERS = {
    ("buyers-60d", "entered"): "order",
    ("lapsed-buyers", "exited"): "order",
    ("win-back", "entered"): "view",
    ("win-back", "exited"): "order",
}
COUNTRIES = ("PL", "DK", "DE", "CZ")
UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"
HISTORY_BATCH = 250  # messages per /v1/batch request of the history


def customer(i: int) -> tuple[str, str]:
    """(kind, country) of known customer I: recent (bought in 50 days), lapsed (70-300 days ago) or browser."""
    h = zlib.crc32(f"cust-{i}".encode())
    kind = "recent" if h % 10 < 3 else "lapsed" if h % 10 < 6 else "browser"
    return kind, COUNTRIES[(h // 10) % len(COUNTRIES)]


def _context(rng: random.Random, path: str) -> dict[str, Any]:
    return {
        "ip": f"83.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
        "locale": "pl-PL",
        "userAgent": UA,
        "page": {"path": path, "url": "https://shop.example.pl" + path, "referrer": "https://www.google.com/"},
    }


def _order(rng: random.Random, order_id: str) -> dict[str, Any]:
    products = [{**payloads.product(rng), "quantity": rng.randint(1, 2)} for _ in range(rng.randint(1, 2))]
    revenue = round(sum(p["price"] * p["quantity"] for p in products), 2)
    return {"order_id": order_id, "revenue": revenue, "currency": "PLN", "products": products}


def _traits(user: str, country: str) -> dict[str, Any]:
    return {"email": f"{user}@example.pl", "country": country, "address": {"country": country}, "firstName": "Anna"}


# ---------------------------------------------------------------------------------------------------------------
# History


def history(profiles: int, seed: int, now: datetime) -> Iterator[list[dict[str, Any]]]:
    """The known customers' past, as /v1/batch message lists (each customer's events in one list, in order)."""
    rng = random.Random(seed)
    batch: list[dict[str, Any]] = []

    def at(days_from: float, days_to: float) -> str:
        t = now - timedelta(days=rng.uniform(days_from, days_to))
        return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    for i in range(profiles):
        user = f"cust-{i}"
        kind, country = customer(i)
        msgs: list[dict[str, Any]] = [
            {"type": "identify", "userId": user, "traits": _traits(user, country), "timestamp": at(360, 400)}
        ]
        for _ in range(rng.randint(1, 4)):  # lapsed customers have not looked in 30 days (win-back candidates)
            item = payloads.product(rng)
            msgs.append(
                {
                    "type": "track",
                    "event": "Product Viewed",
                    "userId": user,
                    "properties": item,
                    "context": _context(rng, f"/p/{item['sku'].lower()}"),
                    "timestamp": at(31 if kind == "lapsed" else 1, 350),
                }
            )
        orders = [] if kind == "browser" else [at(70, 300) for _ in range(rng.randint(1, 3))]
        if kind == "recent":
            orders[0] = at(1, 50)
        for n, when in enumerate(orders):
            store = rng.random() < (0.8 if kind == "lapsed" else 0.5)
            msgs.append(
                {
                    "type": "track",
                    "event": "Order Completed",
                    "userId": user,
                    "properties": _order(rng, f"h-{i}-{n}"),
                    "context": {"channel": "store"} if store else _context(rng, "/checkout"),
                    "timestamp": when,
                }
            )
        for n, msg in enumerate(msgs):
            msg["messageId"] = f"h-{i}-{n}"
        batch += msgs
        if len(batch) >= HISTORY_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def preload(server: intake.Server, profiles: int, seed: int, timeout: float) -> dict[str, Any]:
    """Post the history with 4 connections and wait until it is processed."""
    started = time.monotonic()
    batches = history(profiles, seed, datetime.now(UTC))
    lock = threading.Lock()
    sent = [0]
    failures: list[str] = []

    def post() -> None:
        headers = {"Authorization": server.auth, "Content-Type": "application/json"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=120) as client:
            while True:
                with lock:
                    batch = next(batches, None)
                if batch is None or failures:
                    return
                sent_at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
                response = client.post("/v1/batch", content=msgspec.json.encode({"batch": batch, "sentAt": sent_at}))
                if response.status_code != 200:
                    failures.append(f"{response.status_code} {response.text[:300]}")
                with lock:
                    sent[0] += len(batch)

    threads = [threading.Thread(target=post) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(f"the history was refused: {failures[0]}")
    posted = time.monotonic()
    if not _wait_processed(server, timeout):
        raise RuntimeError(f"the history was not processed within {timeout:.0f} s")
    return {
        "profiles": profiles,
        "events": sent[0],
        "post_s": round(posted - started, 1),
        "processed_s": round(time.monotonic() - started, 1),
    }


def _lag(server: intake.Server) -> int:
    return int(httpx.get(f"{server.url}/api/v1/health", timeout=30).json()["processing_lag"])


def _wait_processed(server: intake.Server, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _lag(server) == 0:
            return True
        time.sleep(0.1)
    return False


# ---------------------------------------------------------------------------------------------------------------
# Load: one process per client library instance


def produce(index: int, job: dict[str, Any], ready: Any, go: MpEvent, start_at: Any, out: Any) -> None:
    """Call analytics-python at job's rate (events/s) for its seconds from START_AT; put what was sent on OUT."""
    import segment.analytics as segment_analytics  # the official Segment library, as a shop's backend uses it
    from segment.analytics.consumer import Consumer

    # when the server acknowledged (200: durable in the journal) each message that may change a membership
    watched: set[str] = set()
    acked: dict[str, float] = {}
    upload = Consumer.request

    def request(consumer: Consumer, batch: list[dict[str, Any]]) -> None:
        upload(consumer, batch)  # raises when the upload failed for good (then on_error counts it)
        at = time.time()
        for message in batch:
            if message["messageId"] in watched:
                acked[message["messageId"]] = at

    Consumer.request = request  # type: ignore[method-assign]

    rate, seconds, profiles, seed = job["rate"], job["seconds"], job["profiles"], job["seed"]

    rng = random.Random(seed * 1000 + index)
    failed = [0]

    def on_error(_error: Exception, batch: list[Any]) -> None:
        failed[0] += len(batch)

    client = segment_analytics.Client(
        job["write_key"],
        host=job["url"],
        on_error=on_error,
        upload_interval=job["upload_interval"],
        max_queue_size=1_000_000,
        max_retries=3,
    )
    first: dict[str, dict[str, tuple[float, str]]] = {"view": {}, "order": {}}  # user -> (call time, messageId)
    visitors: deque[str] = deque()  # new anonymous visitors, not yet identified
    newcomers: deque[str] = deque()  # visitors identified as new customers, not yet ordered
    counts: Counter[str] = Counter()
    dropped = 0

    def known() -> str:
        return f"cust-{rng.randrange(profiles)}"

    def recent() -> str:
        for _ in range(20):
            i = rng.randrange(profiles)
            if customer(i)[0] == "recent":
                break
        return f"cust-{i}"

    def note(kind: str, user: str, n: int) -> str:
        message_id = f"{kind}-{seed}-{index}-{n}"
        if user not in first[kind]:
            first[kind][user] = (time.time(), message_id)
            watched.add(message_id)
        return message_id

    def send_one(n: int) -> bool:
        r = rng.random()
        item = payloads.product(rng)
        context = _context(rng, f"/p/{item['sku'].lower()}")
        if r < 0.06 and visitors:
            visitor = visitors.popleft()
            if rng.random() < 0.7:
                user = f"new-{index}-{n}"
                newcomers.append(user)
                country = rng.choice(COUNTRIES)
            else:
                user = recent()
                country = customer(int(user[5:]))[1]
            counts["identify"] += 1
            return bool(client.identify(user, _traits(user, country), context=context, anonymous_id=visitor)[0])
        if r < 0.18:
            visitor = f"anon-{seed}-{index}-{n}"
            visitors.append(visitor)
            counts["visitor page"] += 1
            return bool(client.page(anonymous_id=visitor, name="Product", properties=item, context=context)[0])
        if r < 0.30:
            user = newcomers.popleft() if r < 0.20 and newcomers else known()
            message_id = note("order", user, n)
            counts["order"] += 1
            properties = _order(rng, f"o-{seed}-{index}-{n}")
            return bool(client.track(user, "Order Completed", properties, context, message_id=message_id)[0])
        user = known()
        if r < 0.38:
            counts["cart add"] += 1
            return bool(client.track(user, "Product Added", {**item, "quantity": 1}, context)[0])
        message_id = note("view", user, n)
        counts["product view"] += 1
        return bool(client.track(user, "Product Viewed", item, context, message_id=message_id)[0])

    ready.put(index)
    go.wait()
    start = start_at.value
    end = start + seconds
    total = int(rate * seconds)
    n = 0
    behind = 0.0
    while n < total:
        now = time.time()
        if now >= end + 1:
            break  # more than a second behind at the end: the library cannot hold the rate
        due = min(int((now - start) * rate) + 1, total)
        behind = max(behind, (due - n) / rate)
        while n < due:
            if not send_one(n):
                dropped += 1
            n += 1
        time.sleep(0.002)
    called_until = time.time()
    client.flush()
    client.shutdown()
    out.put(
        {
            "index": index,
            "called": n,
            "dropped": dropped,
            "failed": failed[0],
            "counts": dict(counts),
            "called_until": called_until,
            "flushed_at": time.time(),
            "max_behind_s": behind,
            # user -> [call time, acknowledgement time] of the first product view and order
            "first": {k: {u: [c, acked.get(m)] for u, (c, m) in v.items()} for k, v in first.items()},
        }
    )


# ---------------------------------------------------------------------------------------------------------------
# The membership feed


class FeedPoller(threading.Thread):
    """Reads GET /api/v1/segments/changes every INTERVAL s; notes when each change was first seen, and the lag."""

    def __init__(self, server: intake.Server, after: int, interval: float) -> None:
        super().__init__(name="feed-poller", daemon=True)
        self.server, self.after, self.interval = server, after, interval
        self.rows: list[dict[str, Any]] = []
        self.lags: list[tuple[float, int]] = []
        self.last_new = time.time()
        self.stop = threading.Event()

    def run(self) -> None:
        with self.server.admin() as client:
            polls = 0
            while not self.stop.is_set():
                while True:
                    page = client.get("/api/v1/segments/changes", params={"after": self.after, "limit": 10_000})
                    seen = time.time()
                    page.raise_for_status()
                    changes = page.json()["changes"]
                    for change in changes:
                        self.rows.append({**change, "seen": seen})
                    if changes:
                        self.after = changes[-1]["seq"]
                        self.last_new = seen
                    if len(changes) < 10_000:
                        break
                if polls % 10 == 0:
                    self.lags.append((time.time(), int(client.get("/api/v1/health").json()["processing_lag"])))
                polls += 1
                self.stop.wait(self.interval)


def feed_cursor(server: intake.Server) -> int:
    """The newest seq of the membership feed (the changes made by applying the segments)."""
    after = 0
    with server.admin() as client:
        while True:
            page = client.get("/api/v1/segments/changes", params={"after": after, "limit": 10_000}).json()
            if not page["changes"]:
                return after
            after = page["next_after"]


# ---------------------------------------------------------------------------------------------------------------


def one_run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    server = intake.start_accord(workdir)
    try:
        loaded = preload(server, args.profiles, args.seed, args.drain_timeout)
        sizes = {}
        with server.admin() as admin:
            for definition in SEGMENTS:
                response = admin.post("/api/v1/segments", json=definition)
                response.raise_for_status()
                sizes[definition["name"]] = admin.get(f"/api/v1/segments/{definition['name']}").json().get("size")
        # applying emits a Segment Entered event per member: let the server process them before the clock starts
        if not _wait_processed(server, args.drain_timeout):
            raise RuntimeError("the Segment Entered events of applying the segments were not processed in time")
        poller = FeedPoller(server, feed_cursor(server), args.poll)
        poller.start()

        ctx = mp.get_context("spawn")
        ready, out, go = ctx.Queue(), ctx.Queue(), ctx.Event()
        start_at = ctx.Value("d", 0.0)
        job = {
            "url": server.url,
            "write_key": server.write_key,
            "rate": args.rate / args.clients,
            "seconds": args.seconds,
            "profiles": args.profiles,
            "seed": args.seed,
            "upload_interval": args.upload_interval,
        }
        procs = [
            ctx.Process(target=produce, args=(i, job, ready, go, start_at, out), daemon=True)
            for i in range(args.clients)
        ]
        for proc in procs:
            proc.start()
        for _ in procs:
            ready.get(timeout=120)
        stats0 = _stats(server)
        cpu0 = server.cpu_seconds()
        start_at.value = start = time.time() + 0.2
        go.set()
        results = [out.get(timeout=args.seconds + args.drain_timeout) for _ in procs]
        for proc in procs:
            proc.join(timeout=60)
        sent_end = max(r["flushed_at"] for r in results)
        lag_at_end = _lag(server)
        drained = _wait_processed(server, args.drain_timeout)
        drained_at = time.time()
        cpu = server.cpu_seconds() - cpu0
        while time.time() - poller.last_new < 2.0 and time.time() - drained_at < 60:
            time.sleep(0.1)  # the last slice's evaluation may follow the cursor by a moment
        poller.stop.set()
        poller.join(timeout=30)
        stats1 = _stats(server)
        assert server.home is not None
        users = _users_by_profile(server.home / "state.sqlite")
    finally:
        server.stop()

    first: dict[str, dict[str, list[float | None]]] = {"view": {}, "order": {}}
    for r in results:
        for kind, times in r["first"].items():
            for user, called_acked in times.items():
                if user not in first[kind] or called_acked[0] < first[kind][user][0]:
                    first[kind][user] = called_acked
    latencies: dict[str, list[float]] = {}
    lower: list[float] = []
    from_ack: list[float] = []
    unattributed = warmup = 0
    for row in poller.rows:
        kind = TRIGGERS.get((row["segment"], row["change"]))
        user = users.get(row["profile_id"])
        sent, ack = first[kind].get(user, [None, None]) if kind and user else [None, None]
        at = intake.utc_epoch(row["at"])
        if sent is None or sent > at:
            unattributed += 1
        elif sent < start + args.warmup:
            warmup += 1
        else:
            latencies.setdefault(f"{row['segment']} {row['change']}", []).append(row["seen"] - sent)
            lower.append(at - sent)
            if ack is not None:
                from_ack.append(row["seen"] - ack)
    everything = sorted(x for values in latencies.values() for x in values)
    called = sum(r["called"] for r in results)
    lags = [lag for _t, lag in poller.lags]
    return {
        "history": loaded,
        "segment_sizes_before": sizes,
        "offered_events_per_s": args.rate,
        "called": called,
        "called_events_per_s": round(called / (max(r["called_until"] for r in results) - start)),
        "client_max_behind_s": round(max(r["max_behind_s"] for r in results), 3),
        "client_dropped": sum(r["dropped"] for r in results),
        "client_failed": sum(r["failed"] for r in results),
        "mix": dict(sum((Counter(r["counts"]) for r in results), Counter())),
        "accepted_messages": stats1["accepted_messages"] - stats0["accepted_messages"],
        "accepted_events_per_s": round(
            (stats1["accepted_messages"] - stats0["accepted_messages"]) / (sent_end - start)
        ),
        "rejected_messages": stats1["rejected_messages"] - stats0["rejected_messages"],
        "events_processed": stats1["events"] - stats0["events"],
        "processed_events_per_s": round((stats1["events"] - stats0["events"]) / (drained_at - start)),
        "processing_lag_max": max(lags, default=0),
        "processing_lag_at_end": lag_at_end,
        "drained": drained,
        "caught_up_after_s": round(drained_at - sent_end, 2),
        "processor_error": stats1.get("processor_error"),
        "membership_changes": len(poller.rows),
        "measured": len(everything),
        "unattributed": unattributed,
        "in_warmup": warmup,
        "latency_s": _figures(everything),
        "latency_by_change_s": {k: _figures(sorted(v)) for k, v in sorted(latencies.items())},
        "evaluation_began_s": _figures(sorted(lower)),
        "from_acknowledgement_s": _figures(sorted(from_ack)),
        "server_cpu_s": round(cpu, 1),
        "server_cpu_s_per_second_of_events": round(cpu / args.seconds, 2),
        "server_cores": round(cpu / (drained_at - start), 2),
    }


def _stats(server: intake.Server) -> dict[str, Any]:
    with server.admin() as client:
        response = client.get("/api/v1/stats")
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data


def _users_by_profile(path: Path) -> dict[str, str]:
    """profile id -> user id, from the identity graph (read-only; the server still owns the file)."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as state:
        rows = state.execute("SELECT profile_id, value FROM identifiers WHERE type = 'user_id'").fetchall()
    return {str(pid): str(user) for pid, user in rows}


def _figures(ordered: list[float]) -> dict[str, Any]:
    if not ordered:
        return {"n": 0}
    return {
        "n": len(ordered),
        "median": round(statistics.median(ordered), 3),
        "p99": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 3),
        "max": round(ordered[-1], 3),
    }


def table(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    r, lat, h, e = result, result["latency_s"], result["history"], result["evaluation_began_s"]
    out = Table(title=f"Event-to-membership latency through the whole server ({r['command']})")
    out.add_column("measure")
    out.add_column("value", justify="right")
    changes = f"{r['membership_changes']:,} ({r['measured']:,}, {r['unattributed']}, {r['in_warmup']})"
    client = f"{r['client_dropped']} / {r['client_failed']} / {r['client_max_behind_s']} s"
    cpu = f"{r['server_cpu_s_per_second_of_events']} ({r['server_cores']})"
    rows = [
        ("history", f"{h['profiles']:,} profiles, {h['events']:,} events (processed in {h['processed_s']} s)"),
        ("offered / called (events/s)", f"{r['offered_events_per_s']:,.0f} / {r['called_events_per_s']:,}"),
        (
            "accepted (incl. the Segment Entered/Exited it emits) / processed",
            f"{r['accepted_messages']:,} / {r['events_processed']:,}",
        ),
        ("accepted events/s (start to last upload)", f"{r['accepted_events_per_s']:,}"),
        ("processed events/s (start to caught up)", f"{r['processed_events_per_s']:,}"),
        ("processing lag max / at end of load (entries)", f"{r['processing_lag_max']} / {r['processing_lag_at_end']}"),
        ("caught up after the last upload (s)", f"{r['caught_up_after_s']}"),
        ("client: dropped / failed / max behind schedule", client),
        ("membership changes (measured, unattributed, warm-up)", changes),
    ]
    if lat["n"]:
        rows.append(("latency median / p99 / max (s)", f"{lat['median']} / {lat['p99']} / {lat['max']}"))
        for change, f in r["latency_by_change_s"].items():
            rows.append((f"  {change} (n={f['n']})", f"{f['median']} / {f['p99']} / {f['max']}"))
        rows.append(("evaluation began (lower bound), same figures", f"{e['median']} / {e['p99']} / {e['max']}"))
        a = r["from_acknowledgement_s"]
        rows.append(
            ("from the server's 200 (no client batching), same figures", f"{a['median']} / {a['p99']} / {a['max']}")
        )
    rows += [
        ("server CPU s per second of events (cores over the run)", cpu),
        ("load average before / after", f"{r['loadavg_before']} / {r['loadavg_after']}"),
    ]
    for label, value in rows:
        out.add_row(label, value)
    Console(width=120).print(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", type=int, default=20_000, help="known customers in the history")
    parser.add_argument("--rate", type=float, default=1000, help="events per second, all clients together")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=1, help="processes, each with one analytics-python Client")
    parser.add_argument("--upload-interval", type=float, default=0.5, help="the library's upload_interval (s)")
    parser.add_argument("--poll", type=float, default=0.05, help="seconds between reads of the membership feed")
    parser.add_argument("--warmup", type=float, default=2.0, help="changes caused in the first seconds not counted")
    parser.add_argument("--drain-timeout", type=float, default=600.0)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--format", choices=("table", "json"), default="table")
    args = parser.parse_args()
    loadavg_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="accord-e2e-") as tmp:
        result = one_run(args, Path(tmp))
    result |= {
        "command": " ".join(["bench/segments_e2e.py", *sys.argv[1:]]),
        "machine": f"{os.cpu_count()} CPUs, {platform.machine()}, Python {platform.python_version()}",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "loadavg_before": [round(x, 2) for x in loadavg_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
    }
    if args.format == "json":
        print(json.dumps(result, indent=2))
    else:
        table(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
