"""Garbage-collector settings for the long-running processes (server, processing worker).

A server process holds a few hundred thousand long-lived objects after start-up (framework, SQLAlchemy, DuckDB,
caches). Python's full (generation 2) collection walks all of them, which paused the event loop for tens to hundreds
of milliseconds at a time under load: the p99 latency of the commerce endpoints. Freezing the start-up heap moves
those objects out of the collector's sight; a larger generation-0 threshold makes young collections rarer.
"""

from __future__ import annotations

import atexit
import gc

YOUNG_THRESHOLD = 20_000  # allocations minus deallocations between young collections (Python's default: 700)


def settle() -> None:
    """Collect once, then freeze everything alive now so later full collections only walk newer objects."""
    gc.collect()
    gc.freeze()
    atexit.register(gc.unfreeze)  # let the final collection at exit see them (native extensions check for leaks)
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
