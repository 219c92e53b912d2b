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
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

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
        self._staged_listeners: list[Callable[[int, int], None]] = []
        self._unannounced: list[tuple[int, int]] = []  # staged slices not yet announced to the listeners
        self._announce_lock = threading.Lock()
        # the next slice, resolving in the worker process while this one's listeners run: (after seq, future)
        self._prefetched: tuple[int, Future[Any]] | None = None

    def add_listener(self, listener: Callable[[int, int], None], staged: bool = False) -> None:
        """Call LISTENER(after_seq, upto_seq) once events with journal_seq in (after_seq, upto_seq] are loaded.

        Listeners (segments, journeys, ...) keep their own cursor over `journal_seq` and identity change seqs, so a
        listener that fails or misses a call catches up on its next run; a failure is logged, never raised here.
        A STAGED listener is called as soon as the slice is staged (visible to queries that read `staged_events`,
        see EventStore.stage), before it is written, and before the other listeners hear of the slice.
        """
        (self._staged_listeners if staged else self._listeners).append(listener)

    def _notify(self, after_seq: int, upto_seq: int, listeners: list[Callable[[int, int], None]] | None = None) -> None:
        for listener in self._listeners if listeners is None else listeners:
            try:
                listener(after_seq, upto_seq)
            except Exception:
                log.exception("event listener %r failed; it catches up on its next run", listener)

    def _announce_written(self) -> None:
        """Tell the (not staged) listeners of the staged slices written since (never under self._lock: a listener
        may call back into the processor)."""
        written = self.events.cursors()[0]
        with self._announce_lock:
            ready = [s for s in self._unannounced if s[1] <= written]
            del self._unannounced[: len(ready)]
        for after, upto in ready:
            self._notify(after, upto)

    def run_once(self) -> int:
        """Process one slice of the journal; returns how many journal entries it covered.

        Called directly, the slice is written before it returns. In the background loop it is staged: the staged
        listeners run at once, the others once the writer has written it (at the latest when the loop idles)."""
        pipelined = self._thread is not None and threading.current_thread() is self._thread
        with self._lock:
            journal_seq, change_seq = self.events.staged_cursors()
            if self._pool is None:
                result = self.resolver.resolve_after(journal_seq, self.batch_size, self.batch_messages)
            else:
                prefetched, self._prefetched = self._prefetched, None
                if prefetched is None or prefetched[0] != journal_seq:
                    prefetched = (journal_seq, self._resolve_in_worker(journal_seq))
                shipped = prefetched[1].result()
                result = None if shipped is None else (read_ipc(shipped[0]), shipped[1])
            if result is None:
                changes = self.graph.changes_since(change_seq)
                if changes:
                    self.events.apply_changes(changes)  # after the staged slices (it waits for them)
            else:
                table, last_seq = result
                changes = self.graph.changes_since(change_seq)
                if pipelined:
                    self.events.stage(table, last_seq, changes)
                    if self._pool is not None:  # the worker resolves the next slice while the listeners run
                        self._prefetched = (last_seq, self._resolve_in_worker(last_seq))
                else:
                    self.events.load(table, last_seq, changes)
                with self._announce_lock:
                    self._unannounced.append((journal_seq, last_seq))
        if result is None:
            if changes:
                self._announce_written()
                self._notify(journal_seq, journal_seq, self._staged_listeners + self._listeners)
            return 0
        self._notify(journal_seq, last_seq, self._staged_listeners)
        self._announce_written()
        return max(last_seq - journal_seq, 1)

    def _resolve_in_worker(self, journal_seq: int) -> Future[Any]:
        assert self._pool is not None
        return self._pool.submit(worker_resolve, journal_seq, self.batch_size, self.batch_messages)

    def settle(self) -> None:
        """Wait for the staged slices to be written and tell the listeners (the loop does this when it idles)."""
        self.events.flush()
        self._announce_written()

    def sync_identity(self) -> int:
        """Apply pending identity changes to the event store now (after an unmerge); returns how many."""
        seq = 0
        with self._lock:
            changes = self.graph.changes_since(self.events.staged_cursors()[1])
            if changes:
                self.events.apply_changes(changes)
                seq = self.events.cursors()[0]
        if changes:
            self._announce_written()
            self._notify(seq, seq, self._staged_listeners + self._listeners)
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
            if (
                journal_seq >= self.journal.last_seq()
                and change_seq >= self.graph.last_change_seq()
                and not self._unannounced  # and the listeners have heard of every slice
            ):
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
            self._prefetched = None  # resolved again from the journal next time (a resolution may be replayed)
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                while not self._stop.is_set():
                    started = time.monotonic()
                    covered = self.run_once()
                    if not covered:
                        self.settle()
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
