"""Whole-log figures of the pages, kept per event store and recomputed off the request path when events arrive."""

from __future__ import annotations

import logging
import queue
import threading
import time
import weakref
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from accord.storage.events import EventStore

log = logging.getLogger(__name__)


@dataclass
class _Entry:
    data: dict[str, Any] | None = None
    computed_at: float = 0.0  # time.monotonic() when the computation started
    cursors: tuple[int, int] = (-1, -1)  # the event store's (journal, identity change) cursors then
    running: threading.Event | None = None  # set when the computation under way ends
    error: BaseException | None = field(default=None, repr=False)


class Figures:
    """Figures per event store and key. A request gets the last figures at once; when new events were loaded and
    they are over MAX_STALE seconds old, a background thread recomputes them (one computation at a time, in a
    daemon thread that never holds up shutdown) while the old ones keep serving. Only a request with no figures
    yet may wait for the first computation."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._entries: weakref.WeakKeyDictionary[Any, dict[Hashable, _Entry]] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._worker: threading.Thread | None = None

    def get(
        self,
        events: EventStore,
        key: Hashable,
        compute: Callable[[], dict[str, Any]],
        max_stale: float,
        first_wait: float | None = None,
        refresh_wait: float = 0.0,
    ) -> dict[str, Any] | None:
        """The figures of KEY: fresh ones at once; stale ones after starting a refresh and waiting up to
        REFRESH_WAIT seconds for it; with none yet, the first computation's once done (FIRST_WAIT seconds at most,
        None: no limit), else None (still computing). A failed computation raises here, and the next call retries."""
        cursors = events.cursors()
        with self._lock:
            entry = self._entries.setdefault(events, {}).setdefault(key, _Entry())
            stale = entry.cursors != cursors and time.monotonic() - entry.computed_at >= max_stale
            if (entry.data is None or stale) and entry.running is None:
                entry.error, entry.running = None, threading.Event()
                self._submit(lambda: self._run(entry, compute, cursors))
            running = entry.running
            wait = first_wait if entry.data is None else refresh_wait
        if running is not None and (wait is None or wait > 0):
            running.wait(timeout=wait)
        with self._lock:
            if entry.data is None and entry.error is not None:
                error, entry.error = entry.error, None
                raise error
            return entry.data

    def _submit(self, job: Callable[[], None]) -> None:
        self._jobs.put(job)
        if self._worker is None or not self._worker.is_alive():
            self._worker = threading.Thread(target=self._work, name=f"accord-figures-{self.name}", daemon=True)
            self._worker.start()

    def _work(self) -> None:
        while True:
            self._jobs.get()()

    def _run(self, entry: _Entry, compute: Callable[[], dict[str, Any]], cursors: tuple[int, int]) -> None:
        started = time.monotonic()
        try:
            data = compute()
        except Exception as exc:  # kept for the waiting request; the figures already shown stay
            log.exception("computing the %s figures failed", self.name)
            with self._lock:
                entry.error = exc
                done, entry.running = entry.running, None
        else:
            with self._lock:
                entry.data, entry.computed_at, entry.cursors = data, started, cursors
                done, entry.running = entry.running, None
        if done is not None:
            done.set()

    def forget(self, events: EventStore) -> None:
        """Drop the figures of EVENTS (tests)."""
        with self._lock:
            self._entries.pop(events, None)
