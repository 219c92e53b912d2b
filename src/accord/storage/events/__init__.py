"""Event store: the append-only event log behind a small protocol, with an embedded DuckDB backend."""

from accord.storage.events.base import EVENT_COLUMNS, EventStore, TimelinePage, open_event_store

__all__ = ["EVENT_COLUMNS", "EventStore", "TimelinePage", "open_event_store"]
