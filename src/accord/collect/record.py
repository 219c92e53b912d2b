"""The normalised event record: what the processor builds from a journalled message and the event store loads."""

from __future__ import annotations

from datetime import datetime

import msgspec


class EventRecord(msgspec.Struct, array_like=True, omit_defaults=True):
    """One accepted Segment message: the typed fields queries need, and the whole message as JSON (``raw``)."""

    event_id: str
    source_id: str
    message_id: str
    type: str
    channel: str
    timestamp: datetime
    received_at: datetime
    raw: bytes
    identifiers: list[str] = []
    event: str | None = None
    name: str | None = None
    user_id: str | None = None
    anonymous_id: str | None = None
    previous_id: str | None = None
    sent_at: datetime | None = None
    original_timestamp: datetime | None = None
    revenue_minor: int | None = None
    currency: str | None = None
    store_id: str | None = None
    library: str | None = None
    campaign_source: str | None = None
    campaign_medium: str | None = None
    campaign_name: str | None = None
