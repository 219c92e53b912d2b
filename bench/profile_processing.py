"""Where the processing time goes: fill a fresh journal with benchmark batches, then process it under cProfile.

Runs in one process (no server, the resolver in-process), so cProfile sees the whole pipeline: reading the
journal, claiming message ids, building records, resolving identities, loading DuckDB.

    .venv/bin/python bench/profile_processing.py --requests 200 --top 30
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import pstats
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from accord.collect.intake import parse_request
from accord.collect.sources import add_source
from accord.config import load_settings
from accord.platform import open_platform

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import payloads  # noqa: E402  (bench/ is not a package)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="batches of 100 messages to journal")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--sort", default="cumulative", help="pstats sort key (cumulative, tottime)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="accord-profile-") as tmp:
        settings = load_settings({"ACCORD_HOME": tmp, "ACCORD_ADMIN_TOKEN": "x"})
        platform = open_platform(settings)
        try:
            source = add_source(platform.state, "bench-web", "web")
            templates = payloads.batch_templates(16)
            t0 = time.perf_counter()
            auth = "Basic " + base64.b64encode(f"{source.write_key}:".encode()).decode()
            for i in range(args.requests):
                body = templates[i % len(templates)].replace(payloads.PLACEHOLDER, f"p-{i}").encode()
                intake = parse_request(body, None, auth, "batch", platform.lookup_source, datetime.now(UTC))
                platform.journal.append(intake.journal_batch())
            journal_s = time.perf_counter() - t0
            messages = args.requests * 100
            print(f"journalled {messages:,} messages in {journal_s:.2f} s (one commit per request)")
            profiler = cProfile.Profile()
            t0 = time.perf_counter()
            profiler.enable()
            while platform.processor.run_once():
                pass
            profiler.disable()
            took = time.perf_counter() - t0
            events = platform.events.count_events()
            print(f"processed {events:,} events in {took:.2f} s: {events / took:,.0f} events/s (in-process, profiled)")
            pstats.Stats(profiler).sort_stats(args.sort).print_stats(args.top)
        finally:
            platform.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
