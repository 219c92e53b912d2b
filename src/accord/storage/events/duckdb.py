"""DuckDB event store: the embedded default, one read-write process per file."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from accord.storage.events import keys, rollup
from accord.storage.events.base import EVENT_COLUMNS, TimelinePage

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    event_id VARCHAR NOT NULL,
    journal_seq BIGINT,
    source_id VARCHAR,
    message_id VARCHAR,
    type VARCHAR NOT NULL,
    event VARCHAR,
    name VARCHAR,
    channel VARCHAR NOT NULL,
    timestamp TIMESTAMPTZ NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    sent_at TIMESTAMPTZ,
    original_timestamp TIMESTAMPTZ,
    user_id VARCHAR,
    anonymous_id VARCHAR,
    identifiers VARCHAR[],
    anchor VARCHAR,
    profile_id VARCHAR,
    revenue_minor BIGINT,
    currency VARCHAR,
    store_id VARCHAR,
    library VARCHAR,
    campaign_source VARCHAR,
    campaign_medium VARCHAR,
    campaign_name VARCHAR,
    raw JSON,
    profile_key UBIGINT  -- the profile's unique integer key (keys.py)
);
CREATE TABLE IF NOT EXISTS ingest_state (
    id INTEGER PRIMARY KEY,
    journal_seq BIGINT NOT NULL,
    change_seq BIGINT NOT NULL
);
INSERT INTO ingest_state SELECT 1, 0, 0 WHERE NOT EXISTS (SELECT 1 FROM ingest_state);
-- a profile's events through an ART index, not a scan of the whole log (profile pages, timeline, store screen);
-- built once when an older file is opened: see docs/benchmarks.md (web pages)
CREATE INDEX IF NOT EXISTS events_profile_id ON events (profile_id);
"""
PROFILE_INDEX = "CREATE INDEX IF NOT EXISTS events_profile_id ON events (profile_id);"
BULK_CHECKPOINT = "1GB"  # write-ahead log size that triggers a checkpoint during a bulk load (default 16 MB)

_COLUMNS = (
    "event_id, journal_seq, source_id, message_id, type, event, name, channel, timestamp, received_at, sent_at, "
    "original_timestamp, user_id, anonymous_id, identifiers, anchor, profile_id, revenue_minor, currency, "
    "store_id, library, campaign_source, campaign_medium, campaign_name, raw"
)
_TIMELINE_COLUMNS = (
    "event_id, type, event, name, channel, timestamp, received_at, source_id, message_id, user_id, anonymous_id, "
    "revenue_minor, currency, store_id, campaign_source, campaign_medium, campaign_name, raw"
)


def _encode_cursor(ts: datetime, event_id: str) -> str:
    return base64.urlsafe_b64encode(f"{ts.isoformat()}|{event_id}".encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
        ts, event_id = text.split("|", 1)
        return datetime.fromisoformat(ts), event_id
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"invalid timeline cursor {cursor!r}") from exc


@dataclass(frozen=True)
class _Staged:
    """A batch handed to the writer thread and not yet written."""

    batch: pa.Table
    journal_seq: int
    changes: list[tuple[int, str, str]]


EMPTY_STAGED = pa.table({c: pa.array([], t) for c, t in EVENT_COLUMNS.items()})


class DuckDBEventStore:
    """The event log in one DuckDB file. Thread-safe: each call uses its own cursor.

    Batches come in two ways: `load` writes one and returns when it is durable; `stage` hands one to the store's
    writer thread and returns at once, and queries see the staged rows as the table `staged_events` (rows after
    the journal seq written in the query's own snapshot: a batch is never counted twice, nor missed, while it is
    being written). A write can wait a second for DuckDB's checkpoint; staging keeps that off the path of those who
    only need to read the new events (incremental segments).
    """

    max_staged = 32  # batches waiting for the writer before `stage` waits too (a checkpoint or compaction)
    # A derived table (rollup.py) is compacted after a write once its fresh rows reach compact_after_rows and
    # compact_ratio times its settled rows: a loaded batch adds about a row per profile it touches, so a server
    # taking a steady stream would otherwise grow event_anchors by a row per event. Each compaction costs about
    # as much as rewriting the table (seconds at a million identifiers, and it competes with the segment queries
    # for the CPU): the ratio keeps it rare and its cost in proportion to the rows it folds (docs/benchmarks.md).
    compact_after_rows = 250_000
    compact_ratio = 4.0

    def __init__(self, path: str | Path, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._con = duckdb.connect(str(self.path), read_only=read_only)
        self._write_lock = threading.Lock()
        self._staged: list[_Staged] = []  # oldest first; a batch leaves once written
        self._staged_changed = threading.Condition()
        self._writer: threading.Thread | None = None
        self._closing = False
        self.write_error: str | None = None  # the last failed staged write (retried until it succeeds)
        # per derived table: [fresh rows (added by loads and identity moves since its last compaction), settled rows]
        self._rows: dict[str, list[int]] = {table: [0, 0] for table in rollup.DUCKDB_COMPACT}
        self.compactions = 0
        self._bulk = False
        if not read_only:
            self._con.execute(SCHEMA)
            self._con.execute(rollup.DUCKDB_SCHEMA)
            self._ensure_profile_keys()
            if self.query("SELECT count(*) FROM event_anchors")[0][0] == 0 and self.count_events() > 0:
                self.rebuild_rollups()  # a file from before the derived tables existed
            elif self.query(
                "SELECT (SELECT count(*) FROM event_traits) = 0 "
                "AND EXISTS (SELECT 1 FROM events WHERE type = 'identify')"
            )[0][0]:
                with self._write() as cur:  # a file from before event_traits existed
                    cur.execute(rollup.duckdb_append_traits("events"))
            self._count_rows()

    def _ensure_profile_keys(self) -> None:
        """Add `profile_key` to a file from before it existed; key the events written without one."""
        found = self._con.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = 'events'").fetchall()
        if "profile_key" not in {r[0] for r in found}:
            self._con.execute("ALTER TABLE events ADD COLUMN profile_key UBIGINT")
        self._con.execute(keys.SCHEMA)
        with self._write() as cur:
            keys.repair(cur)

    def _cur(self) -> duckdb.DuckDBPyConnection:
        cur = self._con.cursor()
        cur.execute("SET TimeZone = 'UTC'")
        return cur

    @contextlib.contextmanager
    def _write(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor in one write transaction (committed, or rolled back on any error), one writer at a time."""
        with self._write_lock:
            cur = self._cur()
            cur.execute("BEGIN TRANSACTION")
            try:
                yield cur
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            finally:
                cur.close()

    def load(self, batch: pa.Table, journal_seq: int, changes: list[tuple[int, str, str]]) -> None:
        self.flush()  # after the staged batches, in journal order
        self._load(batch, journal_seq, changes)
        self._compact_when_due()

    def stage(self, batch: pa.Table, journal_seq: int, changes: list[tuple[int, str, str]]) -> None:
        with self._staged_changed:
            while len(self._staged) >= self.max_staged and self._writer is not None:
                self._staged_changed.wait(1.0)
            self._staged.append(_Staged(batch, journal_seq, changes))
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_staged, name="accord-event-writer", daemon=True)
                self._writer.start()
            self._staged_changed.notify_all()

    def staged_cursors(self) -> tuple[int, int]:
        with self._staged_changed:
            staged = list(self._staged)
        journal_seq, change_seq = self.cursors()
        for batch in staged:
            journal_seq = max(journal_seq, batch.journal_seq)
            change_seq = max([change_seq, *(seq for seq, _k, _p in batch.changes)])
        return journal_seq, change_seq

    def flush(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._staged_changed:
            while self._staged:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._staged_changed.wait(0.5 if left is None else min(left, 0.5))
        return True

    def _write_staged(self) -> None:
        """The writer thread: write the staged batches in order; a failed write is retried (never dropped)."""
        while True:
            with self._staged_changed:
                while not self._staged and not self._closing:
                    self._staged_changed.wait()
                if not self._staged:
                    self._writer = None
                    return
                head = self._staged[0]
            try:
                self._load(head.batch, head.journal_seq, head.changes)
            except Exception as exc:
                self.write_error = f"{type(exc).__name__}: {exc}"
                log.exception("writing a staged batch failed; retrying")
                time.sleep(0.5)
                continue
            self.write_error = None
            with self._staged_changed:
                self._staged.pop(0)
                self._staged_changed.notify_all()
            try:
                self._compact_when_due()  # after the batch left the queue: readers see it written meanwhile
            except Exception:
                log.exception("compacting the derived tables failed; tried again after the next batch")

    def _staged_events(self) -> pa.Table:
        with self._staged_changed:
            batches = [s.batch for s in self._staged]
        return pa.concat_tables(batches) if batches else EMPTY_STAGED

    def _load(self, batch: pa.Table, journal_seq: int, changes: list[tuple[int, str, str]]) -> None:
        with self._write() as cur:
            if batch.num_rows:
                cur.register("incoming", batch)
                keys.assign(cur, "SELECT profile_id FROM incoming")
                cur.execute(
                    f"INSERT INTO events ({_COLUMNS}, profile_key) SELECT {_COLUMNS}, profile_key "
                    f"FROM ({keys.key_of('SELECT * FROM incoming')})"
                )
                for table, append in (
                    ("event_days", rollup.duckdb_append_days("incoming")),
                    ("event_anchors", rollup.duckdb_append_anchors("incoming")),
                ):
                    added = cur.execute(append).fetchone()
                    self._rows[table][0] += added[0] if added else 0
                cur.execute(rollup.duckdb_append_traits("incoming"))
                cur.unregister("incoming")
            self._apply(cur, changes)
            cur.execute(
                "UPDATE ingest_state SET journal_seq = greatest(journal_seq, ?) WHERE id = 1",
                [journal_seq],
            )

    def _apply(self, cur: duckdb.DuckDBPyConnection, changes: list[tuple[int, str, str]]) -> None:
        if not changes:
            return
        latest: dict[str, tuple[int, str]] = {}
        for seq, key, pid in changes:
            latest[key] = (seq, pid)
        table = pa.table(
            {
                "anchor": pa.array(list(latest), pa.string()),
                "profile_id": pa.array([pid for _seq, pid in latest.values()], pa.string()),
            }
        )
        cur.register("identity_changes", table)
        keys.assign(cur, "SELECT profile_id FROM identity_changes")
        cur.execute(
            "UPDATE events SET profile_id = c.profile_id, profile_key = c.profile_key "
            f"FROM ({keys.key_of('SELECT * FROM identity_changes')}) AS c "
            "WHERE events.anchor = c.anchor AND events.profile_id IS DISTINCT FROM c.profile_id"
        )
        for derived in ("event_days", "event_anchors"):
            moved = cur.execute(rollup.duckdb_move(derived, "identity_changes")).fetchone()
            self._rows[derived][0] += moved[0] if moved else 0  # at most: some may have been fresh already
        cur.execute(rollup.duckdb_move("event_traits", "identity_changes"))
        cur.unregister("identity_changes")
        cur.execute(
            "UPDATE ingest_state SET change_seq = greatest(change_seq, ?) WHERE id = 1",
            [max(seq for seq, _k, _p in changes)],
        )

    def apply_changes(self, changes: list[tuple[int, str, str]]) -> None:
        self.flush()  # the staged batches were resolved before these changes
        with self._write() as cur:
            self._apply(cur, changes)
        self._compact_when_due()

    def _count_rows(self, tables: Sequence[str] | None = None) -> None:
        for table in tables or list(self._rows):
            counts = self._rows[table]
            fresh, total = self.query(f"SELECT count(*) FILTER (fresh), count(*) FROM {table}")[0]
            counts[:] = [int(fresh), int(total) - int(fresh)]

    def _compact_when_due(self) -> None:
        if self._bulk:
            return
        due = [
            table
            for table, (fresh, settled) in self._rows.items()
            if fresh >= max(self.compact_after_rows, self.compact_ratio * settled)
        ]
        if due:
            self.compact_rollups(due)

    def compact_rollups(self, tables: Sequence[str] | None = None) -> None:
        """Fold the fresh rows of the derived TABLES (default: both) into one row per profile and day (event_days)
        or profile and anchor (event_anchors), as a rebuild would have them; readers see the same sums."""
        with self._write() as cur:
            for table in tables or list(rollup.DUCKDB_COMPACT):
                for statement in rollup.DUCKDB_COMPACT[table]:
                    cur.execute(statement)
        self._count_rows(tables)
        self.compactions += 1

    @contextlib.contextmanager
    def bulk_load(self) -> Iterator[None]:
        """Loading a long history at once: without the profile index, rebuilt once at the end (an indexed column
        updated by every identity change costs a delete and an insert per row, and each commit writes the index),
        and with automatic checkpoints rarer. The stored events are the same; readers meanwhile scan."""
        self._con.execute("DROP INDEX IF EXISTS events_profile_id")
        self._con.execute(f"SET checkpoint_threshold = '{BULK_CHECKPOINT}'")
        self._bulk = True  # the derived tables are compacted once, at the end
        try:
            yield
        finally:
            self._bulk = False
            self._con.execute("RESET checkpoint_threshold")
            self.compact_rollups()
            self._con.execute(PROFILE_INDEX)
            self._con.execute("CHECKPOINT")

    def rebuild_rollups(self) -> None:
        self.flush()
        with self._write() as cur:
            keys.repair(cur)
            cur.execute("DELETE FROM event_days")
            cur.execute("DELETE FROM event_anchors")
            cur.execute("DELETE FROM event_traits")
            cur.execute(rollup.duckdb_append_traits("events"))
            cur.execute(rollup.duckdb_append_days("events", fresh=False))
            cur.execute("INSERT INTO event_anchors " + rollup.duckdb_anchor_rows("events", fresh=False))
        self._count_rows()

    def rollups_ready(self) -> bool:
        found = self.query(
            "SELECT count(*) FROM information_schema.tables "
            "WHERE table_name IN ('event_days', 'event_anchors', 'event_traits')"
        )
        return int(found[0][0]) == 3

    def cursors(self) -> tuple[int, int]:
        cur = self._cur()
        try:
            row = cur.execute("SELECT journal_seq, change_seq FROM ingest_state WHERE id = 1").fetchone()
        finally:
            cur.close()
        return (int(row[0]), int(row[1])) if row else (0, 0)

    def timeline(
        self,
        profile_id: str,
        limit: int = 50,
        cursor: str | None = None,
        channel: str | None = None,
        descending: bool = False,
    ) -> TimelinePage:
        where = ["TRUE"]
        params: list[Any] = [profile_id]
        if channel:
            where.append("channel = ?")
            params.append(channel)
        if cursor:
            ts, event_id = _decode_cursor(cursor)
            where.append("(timestamp, event_id) < (?, ?)" if descending else "(timestamp, event_id) > (?, ?)")
            params.extend([ts, event_id])
        order = "DESC" if descending else "ASC"
        # The profile's rows first (through the profile index), then the page: a plain top-N with the same filter
        # adds a dynamic filter on the sort key to the scan, and DuckDB then scans the whole log instead.
        sql = (
            f"WITH mine AS MATERIALIZED (SELECT {_TIMELINE_COLUMNS} FROM events WHERE profile_id = ?) "
            f"SELECT {_TIMELINE_COLUMNS} FROM mine WHERE {' AND '.join(where)} "
            f"ORDER BY timestamp {order}, event_id {order} LIMIT ?"
        )
        params.append(limit + 1)
        cur = self._cur()
        try:
            result = cur.execute(sql, params)
            names = [d[0] for d in result.description]
            rows = [dict(zip(names, row, strict=True)) for row in result.fetchall()]
        finally:
            cur.close()
        more = len(rows) > limit
        rows = rows[:limit]
        for row in rows:
            row["raw"] = json.loads(row["raw"]) if row["raw"] else None
        next_cursor = _encode_cursor(rows[-1]["timestamp"], rows[-1]["event_id"]) if more and rows else None
        return TimelinePage(rows, next_cursor)

    def profile_summary(self, profile_id: str) -> dict[str, Any]:
        cur = self._cur()
        try:
            channels = cur.execute(
                "SELECT channel, count(*), min(timestamp), max(timestamp) FROM events WHERE profile_id = ? "
                "GROUP BY channel ORDER BY count(*) DESC, channel",
                [profile_id],
            ).fetchall()
            # the profile's rows through the profile index first: with the unnest beside it in one scan, DuckDB
            # filtered the whole log instead (62 -> 15 ms per profile at 4.6 million events)
            traits = cur.execute(
                """
                WITH mine AS MATERIALIZED (
                    SELECT raw, timestamp, event_id, source_id, type FROM events WHERE profile_id = ?
                )
                SELECT key, arg_max(value, (timestamp, event_id)), max(timestamp),
                       arg_max(source_id, (timestamp, event_id))
                FROM (
                    SELECT k.key AS key, json_extract(raw, '$.traits') -> k.key AS value,
                           timestamp, event_id, source_id
                    FROM mine, unnest(json_keys(json_extract(raw, '$.traits'))) AS k(key)
                    WHERE type = 'identify'
                )
                GROUP BY key ORDER BY key
                """,
                [profile_id],
            ).fetchall()
        finally:
            cur.close()
        # the per-channel rows give the totals too: one scan fewer
        count = sum(int(n) for _ch, n, _f, _l in channels)
        first = min((f for _ch, _n, f, _l in channels), default=None)
        last = max((la for _ch, _n, _f, la in channels), default=None)
        return {
            "event_count": int(count or 0),
            "first_seen": first,
            "last_seen": last,
            "channels": [
                {"channel": ch, "events": int(n), "first_seen": f, "last_seen": la} for ch, n, f, la in channels
            ],
            "traits": {
                key: {
                    "value": json.loads(value) if value is not None else None,
                    "updated_at": at,
                    "source_id": src,
                }
                for key, value, at, src in traits
            },
        }

    def count_events(self) -> int:
        return int(self.query("SELECT count(*) FROM events")[0][0])

    def event_counts_by_channel(self) -> dict[str, int]:
        return {ch: int(n) for ch, n in self.query("SELECT channel, count(*) FROM events GROUP BY channel")}

    def events_by_message(self, source_id: str, message_ids: list[str]) -> list[dict[str, Any]]:
        cur = self._cur()
        try:
            result = cur.execute(
                f"SELECT {_COLUMNS} FROM events WHERE source_id = ? AND list_contains(?, message_id)",
                [source_id, message_ids],
            )
            names = [d[0] for d in result.description]
            return [dict(zip(names, row, strict=True)) for row in result.fetchall()]
        finally:
            cur.close()

    def erase(self, profile_ids: list[str], identifier_keys: list[str]) -> list[tuple[int, str, str]]:
        where = "list_contains(?, profile_id) OR list_contains(?, anchor) OR list_has_any(identifiers, ?)"
        pids, keys = profile_ids or [""], identifier_keys or [""]  # an empty list has no element type
        params = [pids, keys, keys]
        self.flush()  # staged events of the person are written first, then erased with the rest
        with self._write() as cur:
            found = cur.execute(f"SELECT journal_seq, source_id, message_id FROM events WHERE {where}", params)
            gone = [(int(s) if s is not None else -1, str(src), str(m)) for s, src, m in found.fetchall()]
            cur.execute(f"DELETE FROM events WHERE {where}", params)
            for table in ("profile_keys", "profile_key_clashes"):
                cur.execute(f"DELETE FROM {table} WHERE list_contains(?, profile_id)", [pids])
            for derived in ("event_days", "event_anchors", "event_traits"):  # the tables kept beside the log
                cur.execute(
                    f"DELETE FROM {derived} WHERE list_contains(?, profile_id) OR list_contains(?, anchor)",
                    [pids, keys],
                )
        return gone

    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        cur = self._cur()
        try:
            if "staged_events" in sql:  # taken before the query's snapshot: see the class docstring
                cur.register("staged_events", self._staged_events())
            return cur.execute(sql, params or []).fetchall()
        finally:
            cur.close()

    def close(self) -> None:
        self.flush(timeout=60)
        with self._staged_changed:
            self._closing = True
            self._staged_changed.notify_all()
            writer = self._writer
        if writer is not None:
            writer.join(timeout=10)
        self._con.close()
