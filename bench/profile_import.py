"""Per-row cost of `accord import orders` into the local journal (no server), in-process.

Writes the benchmark's POS CSV (`bench/run.py: write_orders_csv`), then imports it through the same
`import_orders` + `JournalSink` the command uses with no server running. Processing into the event store is not
included (the command's own rows/s excludes it too).

    .venv/bin/python bench/profile_import.py --rows 100000              # rows/s
    .venv/bin/python bench/profile_import.py --rows 100000 --profile    # cProfile, top functions
    # instructions per row, repeatable on a busy machine (difference of two sizes removes start-up):
    valgrind --tool=callgrind --callgrind-out-file=/dev/null .venv/bin/python bench/profile_import.py --rows 10000
    valgrind --tool=callgrind --callgrind-out-file=/dev/null .venv/bin/python bench/profile_import.py --rows 30000
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
from pathlib import Path

from accord.collect.importers import import_orders
from accord.collect.imports import JournalSink
from accord.collect.segment import SourceInfo
from accord.collect.sources import ensure_source
from accord.config import load_settings
from accord.platform import open_platform

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from run import write_orders_csv  # noqa: E402  (bench/ is not a package)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--sort", default="tottime")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="accord-import-", dir=BENCH) as tmp:
        path = Path(tmp) / "orders.csv"
        write_orders_csv(path, args.rows)
        settings = load_settings({"ACCORD_HOME": tmp, "ACCORD_ADMIN_TOKEN": "x", "ACCORD_PROCESSING": "off"})
        platform = open_platform(settings)
        try:
            source = ensure_source(platform.state, "pos-import", "store")
            sink = JournalSink(platform.journal, SourceInfo(source.id, source.channel))
            profiler = cProfile.Profile() if args.profile else None
            if profiler:
                profiler.enable()
            report = import_orders(path, sink, channel="store")
            if profiler:
                profiler.disable()
                pstats.Stats(profiler).sort_stats(args.sort).print_stats(args.top)
            print(
                f"{report.rows:,} rows, {report.accepted:,} orders accepted, {report.rejected_rows} rejected, "
                f"{report.seconds:.2f} s: {report.rows_per_second:,.0f} rows/s"
            )
        finally:
            platform.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
