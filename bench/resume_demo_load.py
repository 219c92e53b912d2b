"""Finish an `accord demo` load that was interrupted after its imports (the files are in the journal).

Runs the same steps as the end of `accord demo` (`accord.cli.demo.process_and_finish`: identity resolution and
loading from the event store's cursor on, campaign history, example segments, journeys) and writes the
`demo.json` marker the loader would have written, with the generator's counts.

    ACCORD_HOME=/tmp/web100k .venv/bin/python bench/resume_demo_load.py
"""

from __future__ import annotations

import json
import time

from accord.cli.context import local_platform, settings
from accord.cli.demo import process_and_finish


def main() -> None:
    s = settings()
    directory = s.home / "demo-data"
    marker = s.home / "demo.json"
    if marker.exists():
        raise SystemExit(f"{marker} exists: the demo in {s.home} is loaded")
    started = time.perf_counter()
    with local_platform(s) as platform:
        summary = process_and_finish(platform, directory)
    summary["resumed_seconds"] = round(time.perf_counter() - started, 2)
    counts = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))["counts"]
    marker.write_text(json.dumps({"counts": counts, "load": {"resumed": True, **summary}}, indent=2, default=str))
    print(json.dumps(summary, indent=2, default=str))


if __name__ == "__main__":
    main()
