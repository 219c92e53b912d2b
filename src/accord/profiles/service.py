"""Profile reads over both stores (identity graph in the state store, timeline in the event store)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from accord.identity import queries
from accord.identity.graph import IdentityGraph
from accord.identity.normalize import identifier_key, normalise_type, normalise_value
from accord.identity.rules import IdentityRules
from accord.storage.events import EventStore


class InvalidIdentifier(ValueError):
    """An identifier that is not written TYPE:VALUE or whose value is invalid."""


def parse_identifier(text: str, rules: IdentityRules) -> str:
    """'Email: Ann@X.com ' -> 'email:ann@x.com' (normalised like the graph stores it)."""
    id_type, sep, raw = text.partition(":")
    if not sep or not id_type.strip() or not raw.strip():
        raise InvalidIdentifier(f"identifier must be TYPE:VALUE (e.g. email:ann@example.com), got {text!r}")
    kind = normalise_type(id_type)
    value = normalise_value(kind, raw, rules)
    if value is None:
        raise InvalidIdentifier(f"{raw.strip()!r} is not a valid {kind} (or is a blocked placeholder value)")
    return identifier_key(kind, value)


def resolve(state: sa.Engine, rules: IdentityRules, identifier: str) -> str | None:
    """The live profile id holding an identifier, or None."""
    key = parse_identifier(identifier, rules)
    pid = queries.profile_for_identifier(state, key)
    return queries.current_profile(state, pid) if pid else None


def profile_view(state: sa.Engine, events: EventStore, profile_id: str) -> dict[str, Any] | None:
    """Everything about one profile: identifiers, traits with source and time, channels, first and last seen."""
    current = queries.current_profile(state, profile_id)
    if current is None:
        return None
    summary = events.profile_summary(current)
    return {
        "id": current,
        "requested_id": profile_id if profile_id != current else None,
        "identifiers": queries.identifiers_of(state, current),
        "traits": summary["traits"],
        "first_seen": summary["first_seen"],
        "last_seen": summary["last_seen"],
        "event_count": summary["event_count"],
        "channels": summary["channels"],
        "open_conflicts": len(queries.conflicts(state, current)),
    }


def timeline(
    state: sa.Engine,
    events: EventStore,
    profile_id: str,
    limit: int = 50,
    cursor: str | None = None,
    channel: str | None = None,
    descending: bool = False,
) -> dict[str, Any] | None:
    """One page of the profile's events across channels, each with its channel, in time order."""
    current = queries.current_profile(state, profile_id)
    if current is None:
        return None
    page = events.timeline(current, limit=limit, cursor=cursor, channel=channel, descending=descending)
    return {"profile_id": current, "events": page.events, "next_cursor": page.next_cursor}


def merge_history(state: sa.Engine, profile_id: str) -> dict[str, Any] | None:
    """Merges, regroupings and unmerges that involved the profile, and its open conflicts."""
    current = queries.current_profile(state, profile_id)
    if current is None:
        return None
    return {
        "profile_id": current,
        "merges": queries.merges_of(state, current),
        "conflicts": queries.conflicts(state, current, status=None),
    }


def conflicts(state: sa.Engine, status: str | None = "open") -> list[dict[str, Any]]:
    """Identity conflicts awaiting review."""
    return queries.conflicts(state, status=status)


def unmerge(graph: IdentityGraph, profile_id: str, identifier: str, reason: str) -> dict[str, Any]:
    """Detach IDENTIFIER from the profile into a new one (the caller then syncs the event store)."""
    key = parse_identifier(identifier, graph.rules)
    current = queries.current_profile(graph.engine, profile_id) or profile_id
    new_pid = graph.unmerge(current, key, reason)
    return {"profile_id": current, "new_profile_id": new_pid, "identifier": key}
