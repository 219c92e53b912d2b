"""The resolver: turns journal entries into resolved event rows (dedupe, enrichment, identity), in or out of process."""

from __future__ import annotations

import contextlib
import io
import os
import threading
import time
from collections.abc import Sequence

import msgspec
import pyarrow as pa

from accord import heap
from accord.collect.journal import Journal, JournalEntry, forget_in
from accord.collect.record import EventRecord
from accord.collect.segment import SourceInfo, build_record, merge_batch_level
from accord.collect.sources import source_by_id
from accord.identity.erasure import ErasedKeys
from accord.identity.graph import IdentityGraph, Resolution, Touch
from accord.identity.rules import IdentityRules
from accord.storage import create_state_engine, sync_state
from accord.storage.events import EVENT_COLUMNS

_json = msgspec.json.Decoder()


def records_to_table(
    seqs: Sequence[int], records: Sequence[EventRecord], resolutions: Sequence[Resolution]
) -> pa.Table:
    """The Arrow batch the event store loads (built column by column: one pass per column, no per-row dict)."""
    if not len(seqs) == len(records) == len(resolutions):
        raise ValueError("records_to_table needs one seq and one resolution per record")
    columns: dict[str, Sequence[object]] = {
        "event_id": [r.event_id for r in records],
        "journal_seq": seqs,
        "source_id": [r.source_id for r in records],
        "message_id": [r.message_id for r in records],
        "type": [r.type for r in records],
        "event": [r.event for r in records],
        "name": [r.name for r in records],
        "channel": [r.channel for r in records],
        "timestamp": [r.timestamp for r in records],
        "received_at": [r.received_at for r in records],
        "sent_at": [r.sent_at for r in records],
        "original_timestamp": [r.original_timestamp for r in records],
        "user_id": [r.user_id for r in records],
        "anonymous_id": [r.anonymous_id for r in records],
        "identifiers": [r.identifiers for r in records],
        "anchor": [res.anchor for res in resolutions],
        "profile_id": [res.profile_id for res in resolutions],
        "revenue_minor": [r.revenue_minor for r in records],
        "currency": [r.currency for r in records],
        "store_id": [r.store_id for r in records],
        "library": [r.library for r in records],
        "campaign_source": [r.campaign_source for r in records],
        "campaign_medium": [r.campaign_medium for r in records],
        "campaign_name": [r.campaign_name for r in records],
        "raw": [r.raw for r in records],  # UTF-8 JSON: Arrow validates and stores it as a string as it is
    }
    return pa.table({name: pa.array(columns[name], arrow_type) for name, arrow_type in EVENT_COLUMNS.items()})


class Resolver:
    """Reads journal entries after a sequence number and returns them as one Arrow batch of resolved events.

    With WRITE_CHUNK, its state-store writes (message-id claims, identity resolution) commit in transactions of
    about that many messages: each holds the state store's write lock only briefly, so the durable intake, which
    needs the same lock for every acknowledgement, waits milliseconds rather than a whole slice. Replaying a
    slice (a crash between its transactions and the event-store load) is safe: claims recognise their own entry,
    and resolving a touch again finds what the first pass wrote.
    """

    def __init__(self, journal: Journal, graph: IdentityGraph, write_chunk: int | None = None) -> None:
        self.journal = journal
        self.graph = graph
        self.write_chunk = write_chunk
        self._sources: dict[str, SourceInfo] = {}
        self.erased = ErasedKeys()

    def resolve_after(
        self, journal_seq: int, limit: int, max_messages: int | None = None
    ) -> tuple[pa.Table, int] | None:
        """(events, last journal seq covered) for up to LIMIT entries (about MAX_MESSAGES messages) after
        JOURNAL_SEQ; None when caught up."""
        entries = self.journal.read(journal_seq, limit, max_messages)
        if not entries:
            return None
        seqs: list[int] = []
        records: list[EventRecord] = []
        duplicates = self.journal.claim(entries, self.write_chunk)
        for entry in entries:
            for record in self._records(entry, duplicates[entry.seq]):
                seqs.append(entry.seq)
                records.append(record)
        seqs, records = self._drop_erased(seqs, records)
        touches = [Touch(r.identifiers, r.timestamp, r.message_id, r.source_id, r.previous_id) for r in records]
        step = self.write_chunk or len(touches) or 1
        resolutions: list[Resolution] = []
        for i in range(0, len(touches), step):
            with self.journal.turn():
                resolutions.extend(self.graph.resolve(touches[i : i + step]))
        sync_state(self.journal.engine)  # durable before the event store loads what it wrote
        return records_to_table(seqs, records, resolutions), entries[-1].seq

    def _drop_erased(self, seqs: list[int], records: list[EventRecord]) -> tuple[list[int], list[EventRecord]]:
        """Leave out messages that carry an identifier of an erased person (kept as rejects, without payload)."""
        self.erased.refresh_from(self.journal.engine)
        if not len(self.erased):
            return seqs, records
        kept_seqs: list[int] = []
        kept: list[EventRecord] = []
        rejects: list[tuple[str | None, str, str, str, str | None]] = []
        dropped: list[tuple[int, str]] = []
        for seq, rec in zip(seqs, records, strict=True):
            keys = rec.identifiers
            if rec.previous_id:
                keys = [*keys, f"user_id:{rec.previous_id}", f"anonymous_id:{rec.previous_id}"]
            if self.erased.hits(keys):
                rejects.append(
                    (
                        rec.source_id,
                        "erased",
                        "erased_subject",
                        f"message {rec.message_id} is about an erased person",
                        None,
                    )
                )
                dropped.append((seq, rec.message_id))
                continue
            kept_seqs.append(seq)
            kept.append(rec)
        if rejects:
            with self.journal.turn():
                self.journal.record_rejects(rejects)
                with self.journal.engine.begin() as conn:
                    forget_in(conn, dropped)  # what they sent is not kept either
        return kept_seqs, kept

    def _records(self, entry: JournalEntry, duplicates: set[str]) -> list[EventRecord]:
        source = self._source(entry.source_id)
        payload = _json.decode(entry.body)
        out: list[EventRecord] = []
        if entry.kind in ("batch", "import"):
            items = payload["batch"]
            sent_at = payload.get("sentAt")
            for index, message_id in entry.items:
                if message_id in duplicates:
                    continue
                duplicates.add(message_id)  # a repeat inside one request loads once
                message = merge_batch_level(items[index], payload)
                if entry.kind == "import":  # a file replays history: its timestamps stand, no clock correction
                    message.pop("sentAt", None)
                batch_sent = None if entry.kind == "import" else sent_at
                out.append(
                    build_record(
                        message, source, entry.received_at, self.graph.rules, message_id, batch_sent_at=batch_sent
                    )
                )
        else:
            for _index, message_id in entry.items:
                if message_id in duplicates:
                    continue
                out.append(
                    build_record(
                        payload, source, entry.received_at, self.graph.rules, message_id, forced_type=entry.kind
                    )
                )
        return out

    def _source(self, source_id: str) -> SourceInfo:
        if source_id not in self._sources:
            found = source_by_id(self.journal.engine, source_id)
            self._sources[source_id] = SourceInfo(source_id, found.channel if found else "other")
        return self._sources[source_id]


# ---------------------------------------------------------------- running the resolver in a worker process
_worker: Resolver | None = None
WORKER_WRITE_CHUNK = 25  # messages per state-store transaction of the worker (see Resolver)


def worker_init(
    state_url: str, rules: IdentityRules, lock_share: float | None = None, settle_heap: bool = False
) -> None:
    """Open the state store in the worker process, which yields the CPU to the intake when both want it, and
    the SQLite write lock too: while the intake waits for it, the worker holds it about LOCK_SHARE of the time
    (processing falls behind during a burst of intake and catches up after it)."""
    global _worker
    _exit_with_parent()
    with contextlib.suppress(OSError):
        os.nice(19)  # acknowledging clients comes first; processing catches up in the gaps
    engine = create_state_engine(state_url, deferred_sync=True)
    journal = Journal(engine)
    journal.turn.share = lock_share if lock_share is not None and lock_share < 1.0 else None
    _worker = Resolver(journal, IdentityGraph(engine, rules), write_chunk=WORKER_WRITE_CHUNK)
    if settle_heap:
        heap.settle()


def _exit_with_parent() -> None:
    """End the worker when the server that started it is gone (even after kill -9, which runs no clean-up)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def worker_ready() -> bool:
    """Nothing: submitted once at start so that the worker process is spawned (and imported) before work arrives."""
    return _worker is not None


def worker_resolve(journal_seq: int, limit: int, max_messages: int | None = None) -> tuple[bytes, int] | None:
    """resolve_after in the worker; the batch travels back as Arrow IPC bytes."""
    assert _worker is not None, "worker_init was not run"
    result = _worker.resolve_after(journal_seq, limit, max_messages)
    if result is None:
        return None
    # The worker's commits do not checkpoint the WAL (that would happen inside its write turn); it checkpoints
    # here, outside any turn, so the log does not grow while processing runs without intake. PASSIVE: never
    # blocks a writer; a failure is harmless (the next slice or the intake's checkpointer tries again).
    with contextlib.suppress(Exception):
        _worker.journal.checkpoint()
    table, last_seq = result
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue(), last_seq


def read_ipc(data: bytes) -> pa.Table:
    """The Arrow table sent by worker_resolve."""
    return pa.ipc.open_stream(data).read_all()
