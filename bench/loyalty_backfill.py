"""Measure the loyalty history backfill (`accord.loyalty.history.backfill`) on a copy of a loaded demo home.

The home must hold a demo loaded without the backfill (e.g. by a release before it, or with the ledger emptied);
it is copied, so the original stays as it was. Runs the backfill, then loads the timeline events it emitted into
the event store, then runs it again (it must write nothing), and prints wall and CPU seconds of each step.

    .venv/bin/python bench/loyalty_backfill.py /tmp/demo-home [--keep /tmp/copy]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from accord.config import load_settings
from accord.loyalty.history import backfill
from accord.platform import open_platform


def _measure(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    result = fn()
    after = resource.getrusage(resource.RUSAGE_SELF)
    used = after.ru_utime - cpu.ru_utime + after.ru_stime - cpu.ru_stime
    return result, round(time.perf_counter() - wall, 2), round(used, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("home", type=Path, help="a loaded demo home (state.sqlite, events.duckdb)")
    parser.add_argument("--keep", type=Path, help="copy into this directory and keep it (default: a temp dir)")
    args = parser.parse_args()
    target = args.keep or Path(tempfile.mkdtemp(prefix="loyalty-backfill-"))
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(args.home, target, ignore=shutil.ignore_patterns("demo-data", "server.json", "*.log"))
    settings = load_settings({**os.environ, "ACCORD_HOME": str(target)})
    platform = open_platform(settings)
    try:
        out: dict[str, Any] = {"load_average_before": os.getloadavg()}
        platform.processor.drain()
        report, wall, cpu = _measure(lambda: backfill(platform.loyalty, platform.events))
        out["backfill"] = {"wall_s": wall, "cpu_s": cpu, "report": report}
        lag = platform.processor.lag()
        _, wall, cpu = _measure(lambda: platform.processor.drain(timeout=3600))
        out["timeline_events"] = {"journal_entries": lag, "wall_s": wall, "cpu_s": cpu}
        again, wall, cpu = _measure(lambda: backfill(platform.loyalty, platform.events))
        out["second_run"] = {"wall_s": wall, "cpu_s": cpu, "report": again}
        out["load_average_after"] = os.getloadavg()
        print(json.dumps(out, indent=2, default=str))
    finally:
        platform.close()
        if args.keep is None:
            shutil.rmtree(target, ignore_errors=True)


if __name__ == "__main__":
    main()
