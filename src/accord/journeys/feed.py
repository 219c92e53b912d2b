"""What the journeys engine reads from the other stores: new events, profile traits, a profile's identifier."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC
from typing import Any

import sqlalchemy as sa

from accord.identity import queries as identity_queries
from accord.journeys.engine import JourneyEvent
from accord.storage.events import EventStore

# Identifier types a journey's own events (profile updates) are addressed by, best first.
ADDRESS_TYPES = ("user_id", "email", "phone", "loyalty_card", "device_id", "anonymous_id")


def event_reader(events: EventStore) -> Callable[[int, int], list[JourneyEvent]]:
    """READ(after, upto): the tracked events loaded with journal seq in (after, upto], in time order."""

    def read(after: int, upto: int) -> list[JourneyEvent]:
        rows = events.query(
            "SELECT profile_id, event, timestamp, channel, store_id, json_extract(raw, '$.properties') "
            "FROM events WHERE journal_seq > ? AND journal_seq <= ? AND type = 'track' AND profile_id IS NOT NULL "
            "ORDER BY timestamp, event_id",
            [after, upto],
        )
        out = []
        for pid, name, ts, channel, store_id, props in rows:
            properties = json.loads(props) if props else {}
            if not isinstance(properties, dict):
                properties = {}
            if store_id and "store_id" not in properties:
                properties["store_id"] = store_id
            moment = ts if ts.tzinfo else ts.replace(tzinfo=UTC)
            out.append(JourneyEvent(pid, name or "", moment, channel or "other", properties))
        return out

    return read


def traits_lookup(events: EventStore) -> Callable[[Sequence[str]], dict[str, dict[str, Any]]]:
    """TRAITS(profile_ids): each profile's current traits as {name: value}."""

    def traits(profile_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        return {
            pid: {name: t["value"] for name, t in events.profile_summary(pid)["traits"].items()} for pid in profile_ids
        }

    return traits


def address_of(state: sa.Engine, profile_id: str) -> dict[str, Any] | None:
    """Segment-spec identity fields that resolve to PROFILE_ID (for events journeys emit about it)."""
    current = identity_queries.current_profile(state, profile_id) or profile_id
    held = identity_queries.identifiers_of(state, current)
    by_type: dict[str, str] = {}
    for item in held:
        by_type.setdefault(item["type"], item["value"])
    for kind in ADDRESS_TYPES:
        if kind in by_type:
            if kind == "user_id":
                return {"userId": by_type[kind]}
            if kind == "anonymous_id":
                return {"anonymousId": by_type[kind]}
            return {"context": {"externalIds": [{"type": kind, "id": by_type[kind]}]}}
    return None
