"""Messaging benchmarks: policy + render + outbox throughput, SMTP delivery to a local aiosmtpd sink, and a
100,000-recipient broadcast end to end (identities loaded, planned, sent). Results: docs/benchmarks.md.

    .venv/bin/python bench/messaging_bench.py plan --n 50000 --runs 3
    .venv/bin/python bench/messaging_bench.py smtp --n 10000 --runs 3
    .venv/bin/python bench/messaging_bench.py broadcast --n 100000
    .venv/bin/python bench/messaging_bench.py promotes --n 10000 --runs 5 [--workers 2]
    .venv/bin/python bench/messaging_bench.py purchases --n 20000
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from accord.collect.emit import emit
from accord.config import load_settings
from accord.consent.tables import consents
from accord.messaging import tables as t
from accord.messaging.broadcasts import create_broadcast
from accord.messaging.policy import CapRule, PolicyConfig, QuietHours
from accord.messaging.recipients import Recipient, static_loader
from accord.messaging.sender import Sender
from accord.messaging.service import SendRequest
from accord.platform import Platform, open_platform
from accord.storage import utcnow

TEMPLATE = {
    "name": "spring",
    "purpose": "promotions",
    "tags": ["spring"],
    "default_locale": "en",
    "locales": {
        lang: {
            "email": {
                "subject": f"[{lang}] Spring offer for {{{{ first_name }}}}",
                "html": "<p>Hi {{ first_name }}, {{ price | money('EUR', locale) }}</p>"
                '<a href="https://shop.example/spring">Shop</a><a href="{{ unsubscribe_url }}">unsubscribe</a>',
                "text": "Hi {{ first_name }}, spring offer: {{ price | money('EUR', locale) }}",
            },
            "sms": {"text": "Hi {{ first_name }}, spring offer"},
        }
        for lang in ("en", "pl", "da", "ru", "zh")
    },
}
LOCALES = ["en-GB", "pl-PL", "da", "ru", "zh-CN", "de"]
ZONES = ["Europe/Warsaw", "Asia/Shanghai", "Europe/Copenhagen", "America/New_York"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def open_bench_platform(home: Path) -> Platform:
    platform = open_platform(load_settings({"ACCORD_HOME": str(home)}))
    platform.messaging.policy = PolicyConfig(
        caps=[CapRule(1, "day"), CapRule(3, "week"), CapRule(2, "week", channel="sms")],
        quiet_hours=QuietHours(),
        workspace_timezone="Europe/Warsaw",
    )
    platform.messaging.save_template(TEMPLATE)
    return platform


def recipients(n: int) -> list[Recipient]:
    return [
        Recipient(
            f"P{i:025d}"[-26:],
            {"email": [f"c{i}@example.com"], "user_id": [f"c{i}"]},
            {
                "first_name": f"Name{i}",
                "locale": LOCALES[i % len(LOCALES)],
                "timezone": ZONES[i % len(ZONES)],
                "price": 1999 + i % 100,
            },
        )
        for i in range(n)
    ]


def grant(platform: Platform, people: list[Recipient]) -> None:
    now = utcnow()
    rows = [
        {
            "identifier_key": f"email:{r.first('email')}",
            "purpose": "promotions",
            "channel": "email",
            "status": "opted_in",
            "source": "bench",
            "legal_basis": "consent",
            "updated_at": now,
            "expires_at": None,
        }
        for r in people
    ]
    with platform.state.begin() as conn:
        conn.execute(consents.insert(), rows)


def process_cpu(pids: list[int]) -> float:
    """CPU seconds (user + system) used so far by the processes PIDS (Linux /proc), this one included."""
    total = time.process_time()
    ticks = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def timed_plan(platform: Platform, people: list[Recipient], workers: int) -> tuple[float, float]:
    """Plan the 'spring' template for PEOPLE in chunks of 1,000 (by WORKERS worker processes, started and warmed
    up before the clock, or in this process); checks every recipient was queued. Returns (msg/s, msg/CPU-s)."""
    from accord.messaging.parallel import ParallelPlanner

    messaging, n = platform.messaging, len(people)
    request = SendRequest("spring", ["sms", "email"], due_at=datetime(2031, 5, 6, 10, tzinfo=UTC), broadcast_id="BENCH")
    batches = [[(r, f"b:{r.profile_id}") for r in people[o : o + 1000]] for o in range(0, n, 1000)]
    planner = ParallelPlanner(messaging, workers) if workers else None
    pids: list[int] = []
    if planner is not None:
        planner.warm_up(["spring"])
        pids = planner.pids()  # the workers' CPU counts too
    start = time.perf_counter()
    cpu = process_cpu(pids)
    if planner is not None:
        planner.plan((batch, request) for batch in batches)
    else:
        for batch in batches:
            with platform.state.begin() as conn:
                messaging.plan_in(conn, batch, request)
    elapsed = time.perf_counter() - start
    cpu_rate = n / (process_cpu(pids) - cpu)
    if planner is not None:
        planner.close()
    with platform.state.connect() as conn:
        queued = conn.execute(sa.select(sa.func.count()).where(t.deliveries.c.status == "queued")).scalar()
    assert queued == n, queued
    return n / elapsed, cpu_rate


def bench_plan(n: int, runs: int, queued_events: bool = True, workers: int = 0) -> dict[str, Any]:
    """Policy decision + render (5 locales, Babel money, tracked links, unsubscribe links) + outbox rows +
    'Message Queued' timeline events, committed in chunks of 1,000 on SQLite (the embedded default). With
    WORKERS, the chunks are planned by that many worker processes (started and warmed up before the clock)."""

    rates, cpu_rates = [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            platform = open_bench_platform(Path(tmp))
            people = recipients(n)
            grant(platform, people)
            messaging = platform.messaging
            messaging.loader = static_loader(people)
            messaging.emit_queued = queued_events
            rate, cpu_rate = timed_plan(platform, people, workers)
            rates.append(rate)
            cpu_rates.append(cpu_rate)
            platform.close()
    return {
        "n": n,
        "runs": [round(r) for r in rates],
        "workers": workers,
        "median_msg_per_s": round(statistics.median(rates)),
        "median_msg_per_cpu_s": round(statistics.median(cpu_rates)),
        "load_average": os.getloadavg()[0],
    }


def fill_purchases(platform: Platform, people: list[Recipient], per_person: int = 3) -> None:
    """PER_PERSON purchased items per recipient in messaging's record (none of them the promoted SKU)."""
    now = utcnow()
    rows = [
        {
            "profile_id": r.profile_id,
            "order_id": f"O-{i}-{k}",
            "sku": f"SKU-{(i * 7 + k) % 500}",
            "category": f"cat-{k}",
            "quantity": 1,
            "returned_quantity": 0,
            "purchased_at": now,
            "channel": "store",
        }
        for i, r in enumerate(people)
        for k in range(per_person)
    ]
    with platform.state.begin() as conn:
        for offset in range(0, len(rows), 10000):
            conn.execute(t.purchases.insert(), rows[offset : offset + 10000])


def bench_promotes(n: int, runs: int, workers: int = 0) -> dict[str, Any]:
    """The cost of the "already purchased" check in planning: the same plan as `plan` (messaging's purchase record
    filled with 3 items per recipient) with a template that declares no promoted items (the path before the rule
    existed) and with one that promotes a SKU nobody bought (same decisions and rendering, plus the lookup),
    alternating in each run, each on a fresh store; medians and their ratio."""

    rates: dict[str, list[float]] = {"without": [], "with": []}
    cpu_rates: dict[str, list[float]] = {"without": [], "with": []}
    lookups: list[float] = []  # milliseconds per chunk of 1,000 recipients
    for run in range(runs):
        order = ["without", "with"] if run % 2 == 0 else ["with", "without"]
        for variant in order:
            with tempfile.TemporaryDirectory() as tmp:
                platform = open_bench_platform(Path(tmp))
                messaging = platform.messaging
                if variant == "with":
                    messaging.save_template({**TEMPLATE, "promotes": {"skus": ["SKU-PROMO"], "within": "90d"}})
                people = recipients(n)
                grant(platform, people)
                fill_purchases(platform, people)
                messaging.loader = static_loader(people)
                rate, cpu_rate = timed_plan(platform, people, workers)
                rates[variant].append(rate)
                cpu_rates[variant].append(cpu_rate)
                if variant == "with":  # the lookup alone, chunk by chunk as the planner does it
                    from accord.messaging.purchases import Promotion, bought

                    promotion = Promotion(("SKU-PROMO",))
                    start = time.perf_counter()
                    chunks = [people[o : o + 1000] for o in range(0, n, 1000)]
                    with platform.state.connect() as conn:
                        for chunk in chunks:
                            bought(conn, [r.profile_id for r in chunk], promotion, utcnow())
                    lookups.append((time.perf_counter() - start) / len(chunks) * 1000)
                platform.close()
    without, with_ = statistics.median(rates["without"]), statistics.median(rates["with"])
    cpu_without, cpu_with = statistics.median(cpu_rates["without"]), statistics.median(cpu_rates["with"])
    return {
        "n": n,
        "workers": workers,
        "runs_without_msg_per_s": [round(r) for r in rates["without"]],
        "runs_with_msg_per_s": [round(r) for r in rates["with"]],
        "median_without_msg_per_s": round(without),
        "median_with_msg_per_s": round(with_),
        "with_over_without": round(with_ / without, 3),
        "median_without_msg_per_cpu_s": round(cpu_without),
        "median_with_msg_per_cpu_s": round(cpu_with),
        "cpu_with_over_without": round(cpu_with / cpu_without, 3),
        "median_lookup_ms_per_1000": round(statistics.median(lookups), 2),
        "load_average": os.getloadavg()[0],
    }


def bench_purchases(n: int) -> dict[str, Any]:
    """N `Order Completed` events (2 products each, N/4 customers, 5% of them returned) loaded through the
    processor, whose purchase listener keeps messaging's record as they load (its own time counted apart); then the
    record rebuilt from the whole event store (what `accord purchases rebuild` does)."""
    with tempfile.TemporaryDirectory() as tmp:
        platform = open_bench_platform(Path(tmp))
        customers = max(n // 4, 1)
        ledger = platform.purchases
        assert ledger is not None
        in_listener = [0.0]

        def timed(after: int, upto: int) -> None:  # the purchase listener, with its own time counted
            began = time.perf_counter()
            ledger(after, upto)
            in_listener[0] += time.perf_counter() - began

        listeners = platform.processor._listeners
        listeners[listeners.index(ledger)] = timed
        start = time.perf_counter()
        for offset in range(0, n, 2000):
            messages: list[dict[str, Any]] = [
                {
                    "type": "track",
                    "event": "Order Completed",
                    "userId": f"c{i % customers}",
                    "properties": {
                        "order_id": f"O-{i}",
                        "revenue": 25.0,
                        "currency": "PLN",
                        "products": [{"sku": f"SKU-{i % 300}", "category": f"cat-{i % 12}"}, {"sku": "SKU-BAG"}],
                    },
                }
                for i in range(offset, min(offset + 2000, n))
            ]
            messages += [
                {
                    "type": "track",
                    "event": "Order Returned",
                    "userId": f"c{i % customers}",
                    "properties": {"order_id": f"O-{i}", "return_id": f"R-{i}", "products": [{"sku": "SKU-BAG"}]},
                }
                for i in range(offset, min(offset + 2000, n), 20)
            ]
            with platform.state.begin() as conn:
                emit(conn, platform.journal, "bench-pos", "store", messages)
        platform.processor.drain(timeout=3600)
        load_s = time.perf_counter() - start
        report = ledger.rebuild()
        platform.close()
    return {
        "orders": n,
        "load_through_processor_s": round(load_s, 1),
        "of_which_purchase_listener_s": round(in_listener[0], 2),
        "rebuild_s": round(report["seconds"], 2),
        "rebuild_events_per_s": round(report["events"] / report["seconds"]),
        "purchase_lines": report["purchase_lines"],
        "people": report["people"],
        "load_average": os.getloadavg()[0],
    }


def bench_smtp(n: int, runs: int) -> dict[str, Any]:
    """Sender -> SMTP (one reused connection) -> aiosmtpd in its own process on localhost; delivery states and
    'Message Sent' timeline events committed per batch of 500."""
    import subprocess

    rates, cpu_rates, sink_rates = [], [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            port = free_port()
            count_file = Path(tmp) / "count"
            sink = subprocess.Popen(
                [sys.executable, str(Path(__file__).parent / "smtp_sink.py"), str(port), str(count_file)],
                stdout=subprocess.PIPE,
            )
            assert sink.stdout is not None and sink.stdout.readline().strip() == b"ready"
            platform = open_bench_platform(Path(tmp))
            platform.messaging.policy = PolicyConfig(quiet_hours=None)
            people = recipients(n)
            grant(platform, people)
            messaging = platform.messaging
            messaging.loader = static_loader(people)
            messaging.add_provider("smtp", "email", "smtp", {"port": port, "from": "shop@example.com"})
            for offset in range(0, n, 1000):
                with platform.state.begin() as conn:
                    batch = [(r, f"b:{r.profile_id}") for r in people[offset : offset + 1000]]
                    messaging.plan_in(conn, batch, SendRequest("spring", ["email"]))
            sender = Sender(messaging, batch_size=500)
            start = time.perf_counter()
            cpu, sink_cpu = time.process_time(), process_cpu([sink.pid]) - time.process_time()
            sender.drain(timeout=1800)
            elapsed = time.perf_counter() - start
            cpu_rates.append(n / (time.process_time() - cpu))
            sink_rates.append(n / (process_cpu([sink.pid]) - time.process_time() - sink_cpu))
            sender.close()
            sink.terminate()
            sink.wait()
            received = int(count_file.read_text())
            assert received == n, received
            rates.append(n / elapsed)
            platform.close()
    return {
        "n": n,
        "runs": [round(r) for r in rates],
        "median_emails_per_s": round(statistics.median(rates)),
        "median_emails_per_sender_cpu_s": round(statistics.median(cpu_rates)),
        "median_emails_per_sink_cpu_s": round(statistics.median(sink_rates)),
        "load_average": os.getloadavg()[0],
    }


def bench_broadcast(n: int, workers: int = 0) -> dict[str, Any]:
    """N customers identified through the collect pipeline (journal -> resolver -> DuckDB), opted in to promotions
    in the app, then one broadcast planned from the stores (identity graph + traits from DuckDB, policy with caps,
    render in 6 locales) and sent through the in-app inbox provider; finally the timeline events it emitted
    (queued, sent, delivered) are loaded into the event store."""
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        platform = open_bench_platform(Path(tmp))
        messaging = platform.messaging
        messaging.policy = PolicyConfig(caps=[CapRule(1, "day"), CapRule(3, "week")], quiet_hours=None)
        messaging.save_template(
            {
                "name": "app-offer",
                "purpose": "promotions",
                "locales": {
                    lang: {"in_app": {"title": f"[{lang}] {{{{ first_name }}}}", "body": "Spring offer"}}
                    for lang in ("en", "pl", "da", "ru", "zh")
                },
            }
        )
        messaging.add_provider("inbox", "in_app", "in_app", {}, cost_minor=0)
        start = time.perf_counter()
        for offset in range(0, n, 2500):
            messages = [
                {
                    "type": "identify",
                    "userId": f"c{i}",
                    "context": {"device": {"id": f"dev-{i}"}},
                    "traits": {
                        "email": f"c{i}@example.com",
                        "first_name": f"Name{i}",
                        "locale": LOCALES[i % len(LOCALES)],
                        "timezone": ZONES[i % len(ZONES)],
                    },
                }
                for i in range(offset, min(offset + 2500, n))
            ]
            with platform.state.begin() as conn:
                emit(conn, platform.journal, "bench-crm", "other", messages)
        platform.processor.drain()
        timings["load_identities_s"] = time.perf_counter() - start
        now = utcnow()
        with platform.state.begin() as conn:
            conn.execute(
                consents.insert(),
                [
                    {
                        "identifier_key": f"user_id:c{i}",
                        "purpose": "promotions",
                        "channel": "in_app",
                        "status": "opted_in",
                        "source": "bench",
                        "legal_basis": "consent",
                        "updated_at": now,
                        "expires_at": None,
                    }
                    for i in range(n)
                ],
            )
        with platform.state.connect() as conn:
            pids = [r[0] for r in conn.execute(sa.text("select distinct profile_id from identifiers"))]
        from accord.messaging.parallel import ParallelPlanner

        planner = ParallelPlanner(messaging, workers) if workers else None
        if planner is not None:
            planner.warm_up(["app-offer"])
        start = time.perf_counter()
        result = create_broadcast(
            messaging, "bench", "app-offer", {"profile_ids": pids}, channels=["in_app"], planner=planner
        )
        timings["plan_s"] = time.perf_counter() - start
        if planner is not None:
            planner.close()
        sender = Sender(messaging, batch_size=1000)
        start = time.perf_counter()
        sent = sender.drain(timeout=3600)
        timings["send_s"] = time.perf_counter() - start
        sender.close()
        start = time.perf_counter()
        platform.processor.drain()
        timings["timeline_load_s"] = time.perf_counter() - start
        with platform.state.connect() as conn:
            delivered = conn.execute(sa.select(sa.func.count()).where(t.deliveries.c.status == "delivered")).scalar()
        events = platform.events.query("SELECT count(*) FROM events WHERE event LIKE 'Message %'")[0][0]
        platform.close()
    total = timings["plan_s"] + timings["send_s"]
    return {
        "n": n,
        "planned": result["planned"],
        "handled": sent,
        "delivered": delivered,
        "message_events_on_timelines": events,
        **{k: round(v, 1) for k, v in timings.items()},
        "plan_and_send_s": round(total, 1),
        "recipients_per_s": round(n / total),
        "load_average": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["plan", "smtp", "broadcast", "promotes", "purchases"])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-queued-events", action="store_true", help="plan: no 'Message Queued' timeline events")
    parser.add_argument("--workers", type=int, default=0, help="plan, broadcast, promotes: worker processes")
    args = parser.parse_args()
    if args.what == "plan":
        out = bench_plan(args.n, args.runs, queued_events=not args.no_queued_events, workers=args.workers)
    elif args.what == "purchases":
        out = bench_purchases(args.n)
    elif args.what == "promotes":
        out = bench_promotes(args.n, args.runs, workers=args.workers)
    elif args.what == "smtp":
        out = bench_smtp(args.n, args.runs)
    else:
        out = bench_broadcast(args.n, args.workers)
    print(json.dumps({args.what: out}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
