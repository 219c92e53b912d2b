"""Recipients: what messaging needs to know about a person (identifiers, traits), loaded one by one or in bulk."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from accord.identity import queries as identity_queries
from accord.storage.events import EventStore


@dataclass
class Recipient:
    """One person as messaging sees them: identifiers (type -> values, oldest first) and current traits."""

    profile_id: str
    identifiers: dict[str, list[str]] = field(default_factory=dict)
    traits: dict[str, Any] = field(default_factory=dict)

    def first(self, id_type: str) -> str | None:
        """The first identifier value of ID_TYPE, if any."""
        values = self.identifiers.get(id_type)
        return values[0] if values else None

    def identifier_keys(self) -> list[str]:
        """All identifier keys ('type:value')."""
        return [f"{t}:{v}" for t, values in self.identifiers.items() for v in values]


RecipientLoader = Callable[[Sequence[str]], dict[str, Recipient]]
"""profile ids -> recipients (missing ids are left out)."""

AudienceResolver = Callable[[str], list[str]]
"""segment name -> member profile ids (wired by the composition root, e.g. accord.segments.service.member_ids)."""


def traits_sql(n: int) -> str:
    """Latest value of every trait of N profiles (DuckDB dialect), from identify events' traits."""
    marks = ", ".join("?" for _ in range(n))
    return f"""
        SELECT profile_id, key, arg_max(value, (timestamp, event_id))
        FROM (
            SELECT profile_id, k.key AS key, json_extract(raw, '$.traits') -> k.key AS value, timestamp, event_id
            FROM events, unnest(json_keys(json_extract(raw, '$.traits'))) AS k(key)
            WHERE type = 'identify' AND profile_id IN ({marks})
        )
        GROUP BY profile_id, key
    """


def store_loader(state: sa.Engine, events: EventStore) -> RecipientLoader:
    """Load recipients from the identity graph (state store) and traits (event store), in bulk."""

    snapshot: dict[str, Any] = {"at": 0.0, "ids": {}}

    def identifiers_by_profile() -> dict[str, list[tuple[str, str]]]:
        """profile -> identifiers from one scan of the graph, reused for a few seconds (a broadcast loads its
        audience chunk by chunk; one scan per chunk would cost the whole graph each time)."""
        if time.monotonic() - snapshot["at"] > 10:
            by_profile: dict[str, list[tuple[str, str]]] = {}
            for key, pid in identity_queries.grouping(state).items():
                id_type, _, value = key.partition(":")
                by_profile.setdefault(pid, []).append((id_type, value))
            snapshot["ids"], snapshot["at"] = by_profile, time.monotonic()
        ids: dict[str, list[tuple[str, str]]] = snapshot["ids"]
        return ids

    def load(profile_ids: Sequence[str]) -> dict[str, Recipient]:
        wanted = list(dict.fromkeys(profile_ids))
        out: dict[str, Recipient] = {}
        if len(wanted) <= 50:
            for pid in wanted:
                current = identity_queries.current_profile(state, pid)
                if current is None:
                    continue
                rec = Recipient(current)
                for item in identity_queries.identifiers_of(state, current):
                    rec.identifiers.setdefault(item["type"], []).append(item["value"])
                out[pid] = rec
        else:
            graph = identifiers_by_profile()
            for pid in wanted:
                for id_type, value in graph.get(pid, ()):
                    out.setdefault(pid, Recipient(pid)).identifiers.setdefault(id_type, []).append(value)
        by_current = {rec.profile_id: rec for rec in out.values()}
        ids = list(by_current)
        for start in range(0, len(ids), 5000):
            chunk = ids[start : start + 5000]
            for pid, key, value in events.query(traits_sql(len(chunk)), chunk):
                if value is not None:
                    by_current[pid].traits[key] = json.loads(value)
        return out

    return load


def static_loader(recipients: Iterable[Recipient]) -> RecipientLoader:
    """A loader over recipients given in memory (tests, benchmarks, callers that already hold the data)."""
    table = {r.profile_id: r for r in recipients}

    def load(profile_ids: Sequence[str]) -> dict[str, Recipient]:
        return {pid: table[pid] for pid in profile_ids if pid in table}

    return load
