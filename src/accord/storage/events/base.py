"""The event store protocol that every backend (DuckDB now, ClickHouse for scale) implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import pyarrow as pa

# Column name -> Arrow type of a batch handed to EventStore.load (the table has exactly these columns).
EVENT_COLUMNS: dict[str, pa.DataType] = {
    "event_id": pa.string(),
    "journal_seq": pa.int64(),
    "source_id": pa.string(),
    "message_id": pa.string(),
    "type": pa.string(),
    "event": pa.string(),
    "name": pa.string(),
    "channel": pa.string(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "received_at": pa.timestamp("us", tz="UTC"),
    "sent_at": pa.timestamp("us", tz="UTC"),
    "original_timestamp": pa.timestamp("us", tz="UTC"),
    "user_id": pa.string(),
    "anonymous_id": pa.string(),
    "identifiers": pa.list_(pa.string()),
    "anchor": pa.string(),
    "profile_id": pa.string(),
    "revenue_minor": pa.int64(),
    "currency": pa.string(),
    "store_id": pa.string(),
    "library": pa.string(),
    "campaign_source": pa.string(),
    "campaign_medium": pa.string(),
    "campaign_name": pa.string(),
    "raw": pa.string(),
}


@dataclass(frozen=True)
class TimelinePage:
    """Events of one profile in time order, and the cursor of the next page (None at the end)."""

    events: list[dict[str, Any]]
    next_cursor: str | None


class EventStore(Protocol):
    """What the rest of Accord asks of the event log."""

    write_error: str | None  # the last failed write of a staged batch (retried until it succeeds), else None

    def load(self, batch: pa.Table, journal_seq: int, changes: list[tuple[int, str, str]]) -> None:
        """Append events and apply identity changes (seq, identifier, profile) atomically with the cursors."""

    def stage(self, batch: pa.Table, journal_seq: int, changes: list[tuple[int, str, str]]) -> None:
        """Like `load`, but return at once: a writer writes the batch (in order, after those staged before);
        queries that name `staged_events` see the staged rows not yet written. Durable only once written."""

    def staged_cursors(self) -> tuple[int, int]:
        """`cursors()` counting the staged batches as loaded."""

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every staged batch is written (False if TIMEOUT passed first)."""

    def apply_changes(self, changes: list[tuple[int, str, str]]) -> None:
        """Apply identity changes alone (e.g. after an unmerge) and advance the change cursor."""

    def cursors(self) -> tuple[int, int]:
        """(last journal seq loaded, last identity change seq applied)."""

    def rebuild_rollups(self) -> None:
        """Recompute the derived tables (event_days, event_anchors; see rollup.py) from the events.

        `load` and `apply_changes` keep them current in the same transaction as the events; this is for files
        filled by other means and for compaction (each loaded batch appends its own daily rows)."""

    def rollups_ready(self) -> bool:
        """Whether the derived tables exist (a read-only file from an older release may lack them)."""

    def timeline(
        self,
        profile_id: str,
        limit: int = 50,
        cursor: str | None = None,
        channel: str | None = None,
        descending: bool = False,
    ) -> TimelinePage:
        """One page of a profile's events across channels, in time order."""

    def profile_summary(self, profile_id: str) -> dict[str, Any]:
        """First/last seen, event count, channels used, and current traits with their source and time."""

    def count_events(self) -> int:
        """Number of events stored."""

    def event_counts_by_channel(self) -> dict[str, int]:
        """Number of events per channel."""

    def events_by_message(self, source_id: str, message_ids: list[str]) -> list[dict[str, Any]]:
        """Stored events with these message ids (for checks and tests)."""

    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run a read-only query (dialect of the backend)."""

    def erase(self, profile_ids: list[str], identifier_keys: list[str]) -> list[tuple[int, str, str]]:
        """Delete every event of PROFILE_IDS or carrying one of IDENTIFIER_KEYS, and their rows in tables derived
        from the log (data-subject erasure); returns
        (journal seq, source id, message id) of each deleted event, so the journal can forget them too."""

    def close(self) -> None:
        """Release the store."""


def open_event_store(url: str, read_only: bool = False) -> EventStore:
    """Open the event store named by URL (duckdb:///path)."""
    if url.startswith("duckdb:///"):
        from accord.storage.events.duckdb import DuckDBEventStore

        return DuckDBEventStore(url.removeprefix("duckdb:///"), read_only=read_only)
    raise ValueError(f"unsupported events URL {url!r}: use duckdb:///path (ClickHouse comes in a later release)")
