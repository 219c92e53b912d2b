"""Per-request cost of the collect intake, without HTTP: the fast path's ASGI callable driven in-process.

Drives `CollectFastPath` (the same object `accord serve` runs) with CONNECTIONS concurrent coroutines that each
send requests one after another, so the journal writer's group commit behaves as under wrk. No sockets, no
uvicorn: what is left is exactly Accord's own work per request (validation, group commit, the fsync'd journal
insert, the response). Use it three ways:

    .venv/bin/python bench/profile_intake.py --kind track --requests 5000            # wall clock, requests/s
    .venv/bin/python bench/profile_intake.py --kind track --requests 5000 --profile  # cProfile, top functions
    # instructions per request, repeatable on a busy machine (difference of two runs removes start-up):
    valgrind --tool=callgrind --callgrind-out-file=/dev/null .venv/bin/python bench/profile_intake.py --requests 1000
    valgrind --tool=callgrind --callgrind-out-file=/dev/null .venv/bin/python bench/profile_intake.py --requests 3000
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from accord.api.app import create_app
from accord.api.fastpath import CollectFastPath
from accord.collect.sources import add_source
from accord.collect.writer import JournalWriter
from accord.config import load_settings
from accord.platform import open_platform

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import payloads  # noqa: E402  (bench/ is not a package)


async def drive(front: CollectFastPath, kind: str, bodies: list[bytes], auth: bytes, connections: int) -> int:
    """Send every body once through FRONT, CONNECTIONS at a time; returns how many got a 200."""
    ok = 0
    headers = [(b"authorization", auth), (b"content-type", b"application/json")]
    scope: dict[str, Any] = {"type": "http", "method": "POST", "path": f"/v1/{kind}", "headers": headers}

    async def connection(mine: list[bytes]) -> None:
        nonlocal ok
        for body in mine:
            sent = False

            async def receive(body: bytes = body) -> dict[str, Any]:
                nonlocal sent
                if sent:
                    return {"type": "http.disconnect"}
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}

            status = 0

            async def send(message: dict[str, Any]) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]

            await front(scope, receive, send)  # type: ignore[arg-type]
            ok += status == 200

    await asyncio.gather(*(connection(bodies[i::connections]) for i in range(connections)))
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=["track", "batch"], default="track")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--profile", action="store_true", help="run under cProfile and print the top functions")
    parser.add_argument("--top", type=int, default=35)
    parser.add_argument("--switch-interval", type=float, default=None, help="sys.setswitchinterval (seconds)")
    args = parser.parse_args()
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)
    import uvloop

    with tempfile.TemporaryDirectory(prefix="accord-intake-", dir=BENCH) as tmp:
        settings = load_settings({"ACCORD_HOME": tmp, "ACCORD_ADMIN_TOKEN": "x", "ACCORD_PROCESSING": "off"})
        platform = open_platform(settings)
        try:
            source = add_source(platform.state, "bench-web", "web")
            auth = b"Basic " + base64.b64encode(f"{source.write_key}:".encode())
            templates = payloads.track_templates(16) if args.kind == "track" else payloads.batch_templates(16)
            bodies = [
                templates[i % len(templates)].replace(payloads.PLACEHOLDER, f"r-{i}").encode()
                for i in range(args.requests)
            ]
            app = create_app(settings, platform)
            front = CollectFastPath(app)

            async def run() -> tuple[int, float]:
                writer = JournalWriter(platform.journal)
                await writer.start()
                app.state.platform = platform
                app.state.writer = writer
                await drive(front, args.kind, bodies[:50], auth, args.connections)  # warm caches
                profiler = cProfile.Profile() if args.profile else None
                t0 = time.perf_counter()
                if profiler:
                    profiler.enable()
                ok = await drive(front, args.kind, bodies[50:], auth, args.connections)
                if profiler:
                    profiler.disable()
                took = time.perf_counter() - t0
                await writer.stop()
                if profiler:
                    pstats.Stats(profiler).sort_stats("tottime").print_stats(args.top)
                return ok, took

            ok, took = uvloop.run(run())
            n = len(bodies) - 50
            print(f"{args.kind}: {ok}/{n} answered 200 in {took:.2f} s: {n / took:,.0f} requests/s in-process")
            if ok != n:
                return 1
        finally:
            platform.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
