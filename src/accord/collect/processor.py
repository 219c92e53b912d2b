"""The processor: moves journal entries through identity resolution into the event store, exactly once."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

import pyarrow as pa

from accord.collect.journal import Journal
from accord.collect.record import EventRecord, decode_record
from accord.identity.graph import IdentityGraph, Resolution, Touch
from accord.storage.events import EVENT_COLUMNS, EventStore

log = logging.getLogger(__name__)


def records_to_table(
    seqs: Sequence[int], records: Sequence[EventRecord], resolutions: Sequence[Resolution]
) -> pa.Table:
    """The Arrow batch the event store loads."""
    columns: dict[str, list[object]] = {name: [] for name in EVENT_COLUMNS}
    for seq, rec, res in zip(seqs, records, resolutions, strict=True):
        columns["event_id"].append(rec.event_id)
        columns["journal_seq"].append(seq)
        columns["source_id"].append(rec.source_id)
        columns["message_id"].append(rec.message_id)
        columns["type"].append(rec.type)
        columns["event"].append(rec.event)
        columns["name"].append(rec.name)
        columns["channel"].append(rec.channel)
        columns["timestamp"].append(rec.timestamp)
        columns["received_at"].append(rec.received_at)
        columns["sent_at"].append(rec.sent_at)
        columns["original_timestamp"].append(rec.original_timestamp)
        columns["user_id"].append(rec.user_id)
        columns["anonymous_id"].append(rec.anonymous_id)
        columns["identifiers"].append(rec.identifiers)
        columns["anchor"].append(res.anchor)
        columns["profile_id"].append(res.profile_id)
        columns["revenue_minor"].append(rec.revenue_minor)
        columns["currency"].append(rec.currency)
        columns["store_id"].append(rec.store_id)
        columns["library"].append(rec.library)
        columns["campaign_source"].append(rec.campaign_source)
        columns["campaign_medium"].append(rec.campaign_medium)
        columns["campaign_name"].append(rec.campaign_name)
        columns["raw"].append(rec.raw.decode())
    return pa.table({name: pa.array(values, EVENT_COLUMNS[name]) for name, values in columns.items()})


class Processor:
    """Reads the journal after the event store's cursor, resolves identities, loads events."""

    def __init__(self, journal: Journal, graph: IdentityGraph, events: EventStore, batch_size: int = 5000) -> None:
        self.journal = journal
        self.graph = graph
        self.events = events
        self.batch_size = batch_size
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.last_error: str | None = None

    def run_once(self) -> int:
        """Process one batch; returns the number of journal entries loaded."""
        with self._lock:
            journal_seq, change_seq = self.events.cursors()
            entries = self.journal.read(journal_seq, self.batch_size)
            if not entries:
                changes = self.graph.changes_since(change_seq)
                if changes:
                    self.events.apply_changes(changes)
                return 0
            seqs = [seq for seq, _ in entries]
            records = [decode_record(payload) for _, payload in entries]
            touches = [Touch(r.identifiers, r.timestamp, r.message_id, r.source_id, r.previous_id) for r in records]
            resolutions = self.graph.resolve(touches)
            changes = self.graph.changes_since(change_seq)
            self.events.load(records_to_table(seqs, records, resolutions), seqs[-1], changes)
            return len(entries)

    def sync_identity(self) -> int:
        """Apply pending identity changes to the event store now (after an unmerge); returns how many."""
        with self._lock:
            changes = self.graph.changes_since(self.events.cursors()[1])
            if changes:
                self.events.apply_changes(changes)
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

    def start(self) -> None:
        """Run in a background thread until stop()."""
        self._thread = threading.Thread(target=self._loop, name="accord-processor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the background loop after its current batch."""
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=30)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                while not self._stop.is_set() and self.run_once():
                    pass
                self.last_error = None
            except Exception as exc:  # keep serving; the batch is retried from the journal
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("processor batch failed; retrying")
                time.sleep(1.0)
            self._wake.wait(timeout=0.25)
            self._wake.clear()
