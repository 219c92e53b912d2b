"""The durable ingest journal: accepted request bodies are committed here before the client hears 200."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from accord.collect.tables import ingest_rejects, journal, message_ids
from accord.storage import WriteTurn, utcnow

_ROWS_PER_INSERT = 5000
_CLAIMS = sa.select(message_ids.c.message_id, message_ids.c.seq).where(
    message_ids.c.source_id == sa.bindparam("source"), message_ids.c.message_id.in_(sa.bindparam("ids", expanding=True))
)


@dataclass(frozen=True)
class JournalBatch:
    """One request's accepted messages: the body as received and (index, message id) of each accepted item."""

    source_id: str
    received_at: datetime
    kind: str
    body: bytes
    items: Sequence[tuple[int, str]]


@dataclass(frozen=True)
class JournalEntry:
    """A committed batch as the processor reads it."""

    seq: int
    source_id: str
    received_at: datetime
    kind: str
    body: bytes
    items: list[tuple[int, str]]


_encode = msgspec.json.Encoder().encode
_SQLITE_INSERT = "INSERT INTO journal (source_id, received_at, kind, body, items, n_items) VALUES (?,?,?,?,?,?)"


def _items_text(batch: JournalBatch) -> str:
    return _encode(batch.items).decode()


def _sqlite_rows(batches: Sequence[JournalBatch]) -> list[tuple[str, str, str, bytes, str, int]]:
    return [
        (
            b.source_id,
            b.received_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f"),
            b.kind,
            b.body,
            _items_text(b),
            len(b.items),
        )
        for b in batches
        if b.items
    ]


class Journal:
    """Append (deduplicated per source and message id) and read in sequence order."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._raw: Any = None  # SQLite: one DBAPI connection kept for appends (the intake's hot path)
        self._raw_lock = threading.Lock()
        self.turn = WriteTurn(engine)  # fair hand-over of the SQLite write lock between intake and worker
        self.own_checkpoints = False  # see defer_checkpoints()

    def append(self, batch: JournalBatch) -> None:
        """Commit one request's accepted messages durably."""
        self.append_groups([batch])

    def append_groups(self, batches: Sequence[JournalBatch]) -> None:
        """Commit several requests in ONE transaction (group commit): one fsync for all of them."""
        if not any(b.items for b in batches):
            return
        if self.dialect != "sqlite":
            with self.engine.begin() as conn:
                self.append_in(conn, batches)
            return
        rows = _sqlite_rows(batches)
        with self._raw_lock, self.turn():  # straight on the driver: no pool checkout, statement machinery, reset
            if self._raw is None:
                self._raw = self.engine.raw_connection()
                if self.own_checkpoints:
                    self._raw.cursor().execute("PRAGMA wal_autocheckpoint=0")
            raw = self._raw
            try:
                raw.cursor().executemany(_SQLITE_INSERT, rows)  # the driver opens the transaction
                raw.commit()  # synchronous=FULL: the write-ahead log is flushed before this returns
            except BaseException:
                self._raw = None
                with contextlib.suppress(Exception):
                    raw.rollback()
                raw.invalidate()  # a connection that failed mid-commit is not reused
                raise

    def defer_checkpoints(self) -> None:
        """Appends stop checkpointing the SQLite write-ahead log; the caller runs `checkpoint()` off their path.

        A commit that crosses SQLite's auto-checkpoint size (1,000 pages) copies the log into the database file and
        fsyncs it before returning: a stall of every acknowledgement waiting for that group commit.
        """
        if self.dialect == "sqlite":
            self.own_checkpoints = True

    def checkpoint(self) -> None:
        """Copy committed pages from the write-ahead log into the database (SQLite; never blocks writers)."""
        if self.dialect == "sqlite":
            with self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

    def close(self) -> None:
        """Give back the connection kept for appends."""
        with self._raw_lock:
            if self._raw is not None:
                self._raw.close()
                self._raw = None
            self.turn.close()

    def append_in(self, conn: sa.Connection, batches: Sequence[JournalBatch]) -> None:
        """Append within the caller's transaction (a domain change and the events it emits commit together)."""
        kept = [b for b in batches if b.items]
        if not kept:
            return
        if self.dialect == "sqlite":  # skip per-row type processing
            conn.exec_driver_sql(_SQLITE_INSERT, _sqlite_rows(kept))
        else:
            # One writer at a time keeps sequence order equal to commit order for the processor.
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(424242)")
            conn.execute(
                journal.insert(),
                [
                    {
                        "source_id": b.source_id,
                        "received_at": b.received_at,
                        "kind": b.kind,
                        "body": b.body,
                        "items": _items_text(b),
                        "n_items": len(b.items),
                    }
                    for b in kept
                ],
            )

    def claim(self, entries: Sequence[JournalEntry], max_messages: int | None = None) -> dict[int, set[str]]:
        """Claim the entries' message ids for loading, in one transaction per about MAX_MESSAGES messages.

        Returns, per entry seq, the ids that are duplicates of messages loaded by an earlier entry. An id already
        claimed by the same entry (a replay after a crash) is not a duplicate, so claiming in several transactions
        is as safe as in one: a crash between them replays the entries, which find their own claims.
        """
        if max_messages is None:
            return self._claim(entries)
        out: dict[int, set[str]] = {}
        part: list[JournalEntry] = []
        size = 0
        for entry in entries:
            part.append(entry)
            size += len(entry.items)
            if size >= max_messages:
                out.update(self._claim(part))
                part, size = [], 0
        if part:
            out.update(self._claim(part))
        return out

    def _claim(self, entries: Sequence[JournalEntry]) -> dict[int, set[str]]:
        by_source: dict[str, list[JournalEntry]] = {}
        for entry in entries:
            by_source.setdefault(entry.source_id, []).append(entry)
        owners: dict[tuple[str, str], int] = {}
        with self.turn(), self.engine.begin() as conn:
            for source_id, group in by_source.items():
                if self.dialect == "sqlite":
                    owners.update(((source_id, m), q) for m, q in _claim_sqlite(conn, source_id, group))
                    continue
                rows = []
                seen: set[str] = set()
                for entry in group:
                    for _, mid in entry.items:
                        if mid not in seen:
                            seen.add(mid)
                            rows.append(
                                {
                                    "source_id": source_id,
                                    "message_id": mid,
                                    "seq": entry.seq,
                                    "received_at": entry.received_at,
                                }
                            )
                for i in range(0, len(rows), _ROWS_PER_INSERT):
                    chunk = rows[i : i + _ROWS_PER_INSERT]
                    if self.dialect == "sqlite":
                        conn.execute(message_ids.insert().prefix_with("OR IGNORE"), chunk)
                    else:
                        conn.execute(
                            postgresql.insert(message_ids).on_conflict_do_nothing(
                                index_elements=["source_id", "message_id"]
                            ),
                            chunk,
                        )
                ids = list(seen)
                for i in range(0, len(ids), 900):
                    found = conn.execute(_CLAIMS, {"source": source_id, "ids": ids[i : i + 900]})
                    owners.update(((source_id, str(m)), int(q)) for m, q in found)
        return {
            entry.seq: {mid for _, mid in entry.items if owners.get((entry.source_id, mid)) != entry.seq}
            for entry in entries
        }

    def known_ids(self, source_id: str, ids: Sequence[str]) -> set[str]:
        """Which of IDS were already loaded for the source (used to skip re-imported rows early)."""
        if not ids:
            return set()
        with self.engine.connect() as conn:
            if self.dialect == "sqlite":  # one JSON parameter instead of thousands of bound values
                rows = conn.exec_driver_sql(
                    "SELECT message_id FROM message_ids WHERE source_id = ? "
                    "AND message_id IN (SELECT value FROM json_each(?))",
                    (source_id, json.dumps(list(ids))),
                )
            else:
                rows = conn.execute(
                    sa.text("SELECT message_id FROM message_ids WHERE source_id = :s AND message_id = ANY(:ids)"),
                    {"s": source_id, "ids": list(ids)},
                )
            return {str(r[0]) for r in rows}

    def read(self, after_seq: int, limit: int, max_messages: int | None = None) -> list[JournalEntry]:
        """Up to LIMIT batches after AFTER_SEQ, in order; with MAX_MESSAGES, only as many batches as hold about
        that many messages (at least one), so a slice of single-message requests is as large as one of batches."""
        with self.engine.connect() as conn:
            query = sa.select(journal).where(journal.c.seq > after_seq).order_by(journal.c.seq)
            if max_messages is not None:
                sizes = conn.execute(
                    sa.select(journal.c.seq, journal.c.n_items)
                    .where(journal.c.seq > after_seq)
                    .order_by(journal.c.seq)
                    .limit(limit)
                ).all()
                if not sizes:
                    return []
                total, last = 0, sizes[-1][0]
                for seq, n_items in sizes:
                    total += n_items
                    if total >= max_messages:
                        last = seq
                        break
                query = query.where(journal.c.seq <= last)
            rows = conn.execute(query.limit(limit))
            return [
                JournalEntry(
                    int(r.seq),
                    r.source_id,
                    r.received_at,
                    r.kind,
                    bytes(r.body),
                    [(int(i), str(m)) for i, m in json.loads(r.items)],
                )
                for r in rows
            ]

    def last_seq(self) -> int:
        """The newest sequence number (0 when empty)."""
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(journal.c.seq), 0))).scalar_one())

    def count_messages(self) -> int:
        """Number of messages acknowledged (client retries included)."""
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.coalesce(sa.func.sum(journal.c.n_items), 0))).scalar_one())

    def record_rejects(self, rejects: Sequence[tuple[str | None, str, str, str, str | None]]) -> None:
        """Keep rejected messages (source, way in, code, reason, payload) so that nothing vanishes."""
        if not rejects:
            return
        now = utcnow()
        with self.engine.begin() as conn:
            conn.execute(
                ingest_rejects.insert(),
                [
                    {
                        "source_id": s,
                        "received_at": now,
                        "channel": ch,
                        "code": code,
                        "reason": reason,
                        "payload": (payload or "")[:32768],
                    }
                    for s, ch, code, reason, payload in rejects
                ],
            )

    def count_rejects(self) -> int:
        """Number of rejected messages kept."""
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(ingest_rejects)).scalar_one())


_SQLITE_CLAIM = "INSERT OR IGNORE INTO message_ids (source_id, message_id, seq, received_at) VALUES (?,?,?,?)"
_SQLITE_CLAIMED = (
    "SELECT message_id, seq FROM message_ids WHERE source_id = ? AND message_id IN (SELECT value FROM json_each(?))"
)


def _claim_sqlite(conn: sa.Connection, source_id: str, entries: Sequence[JournalEntry]) -> list[tuple[str, int]]:
    """Journal.claim's statements for one source on SQLite, straight on the driver (no per-row statement machinery):
    the same rows, the timestamp in the text form SQLAlchemy stores (as the journal's own appends do); returns
    (message id, claiming seq) of every id of the ENTRIES."""
    rows: list[tuple[str, str, int, str]] = []
    seen: set[str] = set()
    for entry in entries:
        stamp = entry.received_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        for _, mid in entry.items:
            if mid not in seen:
                seen.add(mid)
                rows.append((source_id, mid, entry.seq, stamp))
    if not rows:
        return []
    conn.exec_driver_sql(_SQLITE_CLAIM, rows)
    ids = list(seen)
    found: list[tuple[str, int]] = []
    for i in range(0, len(ids), _ROWS_PER_INSERT):
        result = conn.exec_driver_sql(_SQLITE_CLAIMED, (source_id, json.dumps(ids[i : i + _ROWS_PER_INSERT])))
        found.extend((str(m), int(q)) for m, q in result)
    return found


def forget_in(conn: sa.Connection, messages: Sequence[tuple[int, str]], values: Sequence[str] = ()) -> int:
    """Data-subject erasure in the journal, in CONN's transaction: blank MESSAGES (journal seq, message id) out of
    the stored request bodies (the entries stay, with their other messages), and drop kept rejects whose payload
    names one of VALUES (an email address, a phone number). Returns the number of messages blanked."""
    by_seq: dict[int, set[str]] = {}
    for seq, message_id in messages:
        if seq is not None:
            by_seq.setdefault(int(seq), set()).add(str(message_id))
    blanked = 0
    seqs = sorted(by_seq)
    for start in range(0, len(seqs), 500):
        rows = conn.execute(
            sa.select(journal.c.seq, journal.c.kind, journal.c.body, journal.c["items"]).where(
                journal.c.seq.in_(seqs[start : start + 500])
            )
        ).all()
        for row in rows:
            drop = by_seq[int(row.seq)]
            items = [(int(i), str(m)) for i, m in json.loads(row.items)]
            gone = [(i, m) for i, m in items if m in drop]
            if not gone:
                continue
            kept = [(i, m) for i, m in items if m not in drop]
            if row.kind in ("batch", "import"):
                body = json.loads(bytes(row.body))
                for index, _m in gone:
                    body["batch"][index] = {}
                data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
            else:
                data = b"{}"
            conn.execute(journal.update().where(journal.c.seq == row.seq).values(body=data, items=json.dumps(kept)))
            blanked += len(gone)
    for value in values:
        if value:
            conn.execute(ingest_rejects.delete().where(ingest_rejects.c.payload.contains(value, autoescape=True)))
    return blanked
