"""Identity resolution throughput: the resolver alone over a journal of a steady stream of ordinary events.

Fills a fresh state store with a warm-up (one identify with traits per customer, resolved untimed, so that the
customers are known), then with N events of a steady stream (100 per request, Segment-spec payloads of
bench/payloads.py): mostly known customers on their known device, a share of known customers on a new device
(a login linking a new anonymous id to the user id), new anonymous visitors, and visitors who log in mid-session
(an anonymous profile merged into the user's); identify calls with traits throughout. Then it times
Resolver.resolve_after over that journal in slices of 5,000 entries / 20,000 messages, as the Processor does.

"bare" runs the same loop with the identity graph replaced by one that does nothing (read the journal, claim
message ids, build the records, build the Arrow table): the ratio shows what identity resolution costs.

    .venv/bin/python bench/identity_throughput.py --events 200000 --customers 20000 --runs 3
    .venv/bin/python bench/identity_throughput.py --write-chunk 25     # as the server's worker process commits
    .venv/bin/python bench/identity_throughput.py --state-url postgresql+psycopg://postgres@127.0.0.1:5432/test

Each run starts from a fresh store; figures are the median of the runs (wall seconds, events/s, CPU seconds of
this process: on PostgreSQL the server's CPU is not included).
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import sqlalchemy as sa

from accord.collect.intake import parse_request
from accord.collect.journal import Journal
from accord.collect.resolver import Resolver
from accord.collect.segment import SourceInfo
from accord.collect.sources import add_source
from accord.identity.graph import IdentityGraph, Resolution, Touch
from accord.identity.rules import IdentityRules
from accord.storage import create_state_engine, migrate

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import payloads  # noqa: E402  (bench/ is not a package)

PER_REQUEST = 100
SLICE_ENTRIES = 5000
SLICE_MESSAGES = 20_000


class BareGraph(IdentityGraph):
    """No identity work: every message anchored on its first identifier, no profile."""

    def resolve(self, touches: Sequence[Touch]) -> list[Resolution]:
        return [Resolution(t.identifiers[0] if t.identifiers else None, None) for t in touches]


def _session(rng: random.Random, now: datetime, anonymous_id: str, user: int | None) -> payloads._Session:
    s = payloads._Session(rng, 0, app=rng.random() < 0.4, now=now)
    s.anonymous_id = anonymous_id
    s.user = user
    return s


def warmup_messages(customers: int, now: datetime, seed: int) -> list[dict[str, Any]]:
    """One identify with traits per customer, from the device they keep using."""
    rng = random.Random(seed)
    return [_session(rng, now, f"anon-known-{c}", c).identify(c) for c in range(customers)]


def stream_messages(events: int, customers: int, now: datetime, seed: int) -> tuple[list[dict[str, Any]], dict]:
    """About EVENTS messages in sessions of about eight, with the mix described in the module docstring."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    mix: dict[str, int] = {"known": 0, "known_new_device": 0, "new_anonymous": 0, "login_mid_session": 0}
    n = 0
    while len(out) < events:
        n += 1
        roll = rng.random()
        c = rng.randrange(customers)
        if roll < 0.70:
            kind, s = "known", _session(rng, now, f"anon-known-{c}", c)
        elif roll < 0.80:
            kind, s = "known_new_device", _session(rng, now, f"anon-s{n}", c)
        elif roll < 0.95:
            kind, s = "new_anonymous", _session(rng, now, f"anon-s{n}", None)
        else:
            kind, s = "login_mid_session", _session(rng, now, f"anon-s{n}", None)
        mix[kind] += 1
        plan = ["view", "viewed", "view", "added", "view", "viewed", "view"]
        if kind in ("known", "known_new_device") and rng.random() < 0.3:
            plan.insert(rng.randrange(len(plan)), "identify")
        if rng.random() < 0.3:
            plan.append("order")
        for i, step in enumerate(plan):
            if kind == "login_mid_session" and i == 3:
                s.user = c  # logs in: from here on the messages carry the user id
                out.append(s.identify(len(out)))
            seq = len(out)
            if step == "view":
                out.append(s.view(seq))
            elif step == "identify":
                out.append(s.identify(seq))
            elif step == "order":
                out.append(s.order(seq))
            else:
                out.append(s.product_event(seq, "Product Viewed" if step == "viewed" else "Product Added"))
    return out[:events], mix


def bodies(messages: list[dict[str, Any]], tag: str, now: datetime) -> list[bytes]:
    sent_at = now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    out = []
    for i in range(0, len(messages), PER_REQUEST):
        text = msgspec.json.encode({"batch": messages[i : i + PER_REQUEST], "sentAt": sent_at}).decode()
        out.append(text.replace(payloads.PLACEHOLDER, f"{tag}-{i}").encode())
    return out


def fill(journal: Journal, source: SourceInfo, write_key: str, requests: list[bytes]) -> None:
    auth = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()

    def lookup(key: str) -> SourceInfo | None:
        return source if key == write_key else None

    batch = []
    for body in requests:
        intake = parse_request(body, None, auth, "batch", lookup, datetime.now(UTC))
        batch.append(intake.journal_batch())
        if len(batch) == 50:
            journal.append_groups(batch)
            batch = []
    journal.append_groups(batch)


def drain(resolver: Resolver, after: int) -> tuple[int, int]:
    """Resolve the journal after AFTER to its end; (events, last seq)."""
    events = 0
    while True:
        result = resolver.resolve_after(after, SLICE_ENTRIES, SLICE_MESSAGES)
        if result is None:
            return events, after
        table, after = result
        events += table.num_rows


class Store:
    """A fresh state store per run: a SQLite file in a temporary directory, or a PostgreSQL schema."""

    def __init__(self, state_url: str | None) -> None:
        self.base = state_url
        self.tmp = tempfile.TemporaryDirectory(prefix="accord-identity-")
        self.schema: str | None = None

    def url(self) -> str:
        if self.base is None:
            return f"sqlite:///{os.path.join(self.tmp.name, secrets.token_hex(4) + '.sqlite')}"
        self.schema = "b_" + secrets.token_hex(6)
        with sa.create_engine(self.base).begin() as conn:
            conn.execute(sa.text(f"CREATE SCHEMA {self.schema}"))
        sep = "&" if "?" in self.base else "?"
        return f"{self.base}{sep}options=-csearch_path%3D{self.schema}"

    def drop(self) -> None:
        if self.base is not None and self.schema is not None:
            with sa.create_engine(self.base).begin() as conn:
                conn.execute(sa.text(f"DROP SCHEMA {self.schema} CASCADE"))
            self.schema = None


def one_run(
    store: Store, warm: list[bytes], stream: list[bytes], bare: bool, write_chunk: int | None, deferred: bool
) -> dict[str, float]:
    url = store.url()
    engine = create_state_engine(url, deferred_sync=deferred)
    try:
        migrate(engine)
        src = add_source(engine, "bench-web", "web")
        source = SourceInfo(src.id, "web")
        journal = Journal(engine)
        rules = IdentityRules()
        graph: IdentityGraph = BareGraph(engine, rules) if bare else IdentityGraph(engine, rules)
        resolver = Resolver(journal, graph, write_chunk=write_chunk)
        fill(journal, source, src.write_key, warm)
        _n, after = drain(resolver, 0)
        fill(journal, source, src.write_key, stream)
        t0, c0 = time.perf_counter(), time.process_time()
        events, _last = drain(resolver, after)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        journal.close()
        return {"events": events, "wall": wall, "cpu": cpu, "rate": events / wall}
    finally:
        engine.dispose()
        store.drop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--write-chunk", type=int, default=None, help="messages per transaction (server worker: 25)")
    parser.add_argument("--state-url", default=None, help="PostgreSQL URL (default: a SQLite file per run)")
    parser.add_argument("--no-bare", action="store_true", help="skip the bare-limit baseline")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    now = datetime.now(UTC) - timedelta(hours=1)
    warm = bodies(warmup_messages(args.customers, now - timedelta(days=1), args.seed), "w", now)
    stream_msgs, mix = stream_messages(args.events, args.customers, now, args.seed + 1)
    stream = bodies(stream_msgs, "s", now)
    deferred = args.write_chunk is not None  # the worker's engine: commits fsync once per slice
    print(
        f"{len(stream_msgs):,} events over {args.customers:,} customers (sessions: "
        + ", ".join(f"{k} {v:,}" for k, v in mix.items())
        + f"); write chunk {args.write_chunk or 'whole slice'}; "
        f"state {'SQLite' if args.state_url is None else 'PostgreSQL'}; load {os.getloadavg()[0]:.2f}"
    )
    store = Store(args.state_url)
    modes = [("identity", False)] + ([] if args.no_bare else [("bare", True)])
    medians: dict[str, dict[str, float]] = {}
    for name, bare in modes:
        runs = [one_run(store, warm, stream, bare, args.write_chunk, deferred) for _ in range(args.runs)]
        med = {k: statistics.median(r[k] for r in runs) for k in ("wall", "cpu", "rate")}
        medians[name] = med
        print(
            f"{name:8s} {int(runs[0]['events']):,} events: median {med['rate']:,.0f} events/s, "
            f"{med['wall']:.2f} s wall, {med['cpu']:.2f} s CPU  (runs: "
            + ", ".join(f"{r['rate']:,.0f}" for r in runs)
            + ")"
        )
    if "bare" in medians:
        ratio = medians["bare"]["rate"] / medians["identity"]["rate"]
        print(f"bare limit / identity: {ratio:.2f}x; load {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
