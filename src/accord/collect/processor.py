"""The processor: moves journal entries into the event store exactly once, with identities resolved.

The heavy Python work (enrichment, identity resolution) runs in a worker process when the server runs, so that
it does not compete with the HTTP intake for the interpreter; loading into the event store stays in the process
that owns it.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

from accord.collect.journal import Journal
from accord.collect.resolver import Resolver, read_ipc, worker_init, worker_ready, worker_resolve
from accord.identity.graph import IdentityGraph
from accord.storage.events import EventStore

log = logging.getLogger(__name__)


class Processor:
    """Reads the journal after the event store's cursor, resolves identities, loads events."""

    def __init__(
        self,
        journal: Journal,
        graph: IdentityGraph,
        events: EventStore,
        batch_size: int = 5000,
        batch_messages: int = 20_000,
        min_interval: float = 0.05,
    ) -> None:
        self.journal = journal
        self.graph = graph
        self.events = events
        self.batch_size = batch_size  # journal entries per slice, at most
        self.batch_messages = batch_messages  # messages per slice, about (one request of a batch may exceed it)
        self.min_interval = min_interval  # seconds between the starts of two slices that are not full
        self.resolver = Resolver(journal, graph)
        self._pool: ProcessPoolExecutor | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.last_error: str | None = None
        self._listeners: list[Callable[[int, int], None]] = []

    def add_listener(self, listener: Callable[[int, int], None]) -> None:
        """Call LISTENER(after_seq, upto_seq) once events with journal_seq in (after_seq, upto_seq] are loaded.

        Listeners (segments, journeys, ...) keep their own cursor over `journal_seq` and identity change seqs, so a
        listener that fails or misses a call catches up on its next run; a failure is logged, never raised here.
        """
        self._listeners.append(listener)

    def _notify(self, after_seq: int, upto_seq: int) -> None:
        for listener in self._listeners:
            try:
                listener(after_seq, upto_seq)
            except Exception:
                log.exception("event listener %r failed; it catches up on its next run", listener)

    def run_once(self) -> int:
        """Process one slice of the journal; returns how many journal entries it covered."""
        with self._lock:
            journal_seq, change_seq = self.events.cursors()
            if self._pool is None:
                result = self.resolver.resolve_after(journal_seq, self.batch_size, self.batch_messages)
            else:
                shipped = self._pool.submit(worker_resolve, journal_seq, self.batch_size, self.batch_messages).result()
                result = None if shipped is None else (read_ipc(shipped[0]), shipped[1])
            if result is None:
                changes = self.graph.changes_since(change_seq)
                if changes:
                    self.events.apply_changes(changes)
                    self._notify(journal_seq, journal_seq)
                return 0
            table, last_seq = result
            self.events.load(table, last_seq, self.graph.changes_since(change_seq))
        self._notify(journal_seq, last_seq)
        return max(last_seq - journal_seq, 1)

    def sync_identity(self) -> int:
        """Apply pending identity changes to the event store now (after an unmerge); returns how many."""
        seq = 0
        with self._lock:
            changes = self.graph.changes_since(self.events.cursors()[1])
            if changes:
                self.events.apply_changes(changes)
                seq = self.events.cursors()[0]
        if changes:
            self._notify(seq, seq)
        return len(changes)

    def drain(self, timeout: float = 60.0) -> bool:
        """Process until the journal is fully loaded and identity changes applied (or TIMEOUT passes)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._thread is None:
                while self.run_once():
                    pass
            else:
                self.wake()
            journal_seq, change_seq = self.events.cursors()
            if journal_seq >= self.journal.last_seq() and change_seq >= self.graph.last_change_seq():
                return True
            if self._thread is not None:
                time.sleep(0.02)
        return False

    def lag(self) -> int:
        """Journal entries not yet in the event store."""
        return max(self.journal.last_seq() - self.events.cursors()[0], 0)

    def wake(self) -> None:
        """Tell the background loop there is new work."""
        self._wake.set()

    def start(
        self,
        worker_process: bool = False,
        state_url: str | None = None,
        lock_share: float | None = None,
        settle_heap: bool = False,
    ) -> None:
        """Run in a background thread until stop(); resolve in a worker process if asked (which keeps about
        LOCK_SHARE of the SQLite write lock while the intake waits for it, and freezes its start-up heap when
        SETTLE_HEAP, see accord/heap.py)."""
        if worker_process:
            if state_url is None:
                raise ValueError("a worker process needs the state store URL")
            self._pool = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=worker_init,
                initargs=(state_url, self.graph.rules, lock_share, settle_heap),
            )
            self._pool.submit(worker_ready)  # spawn it now: the first events should not wait for its start-up
        self._thread = threading.Thread(target=self._loop, name="accord-processor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the background loop after its current batch."""
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=30)
            self._thread = None
        if self._pool:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                while not self._stop.is_set():
                    started = time.monotonic()
                    covered = self.run_once()
                    if not covered:
                        break
                    if covered < self.batch_size:
                        # a small slice: let the next one gather what arrives meanwhile, so that steady single
                        # messages are loaded (and listeners run) a few times a second, not once per request
                        self._stop.wait(max(self.min_interval - (time.monotonic() - started), 0.0))
                self.last_error = None
            except Exception as exc:  # keep serving; the batch is retried from the journal
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("processor batch failed; retrying")
                time.sleep(1.0)
            self._wake.wait(timeout=0.25)
            self._wake.clear()
