"""Domain events onto the timeline: other domains append Segment-shaped messages inside their own transaction.

A domain change (a reservation, a redemption, a consent change, a delivery) and the events it emits commit
together: the messages go into the same durable journal as collected events, so they are identity-resolved, land
on the profile's timeline and reach every listener exactly like events from any other source.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec
import sqlalchemy as sa

from accord.collect.errors import CollectError
from accord.collect.intake import intake_import
from accord.collect.journal import Journal
from accord.collect.segment import SourceInfo
from accord.collect.tables import sources
from accord.storage import new_id, utcnow


def internal_source(conn: sa.Connection, name: str, channel: str) -> SourceInfo:
    """The internal source NAME (e.g. `accord-commerce`), created with CHANNEL on first use, in CONN's transaction."""
    row = conn.execute(sa.select(sources.c.id, sources.c.channel).where(sources.c.name == name)).first()
    if row is not None:
        return SourceInfo(row.id, row.channel)
    source_id = new_id()
    conn.execute(
        sources.insert().values(
            id=source_id, name=name, write_key="internal_" + source_id, channel=channel, created_at=utcnow()
        )
    )
    return SourceInfo(source_id, channel)


def emit(
    conn: sa.Connection,
    journal: Journal,
    source_name: str,
    channel: str,
    messages: Sequence[Mapping[str, Any]],
    received_at: datetime | None = None,
) -> list[str]:
    """Append MESSAGES (Segment spec: type, event, userId/anonymousId/context.externalIds, properties, ...) to the
    journal in CONN's transaction; returns their message ids. A message without `messageId` gets a new one; a
    message that would be rejected raises CollectError (a domain must not emit malformed events)."""
    stamped: list[dict[str, Any]] = []
    for message in messages:
        one = dict(message)
        if "messageId" not in one:  # not setdefault: a new id costs more than the rest of the loop
            one["messageId"] = new_id()
        one.setdefault("type", "track")
        stamped.append(one)
    if not stamped:
        return []
    source = internal_source(conn, source_name, channel)
    intake = intake_import(msgspec.to_builtins(stamped), source, received_at or datetime.now(UTC))
    if intake.rejects:
        first = intake.rejects[0]
        raise CollectError(f"emitted event {first.index} is invalid: {first.reason}", code="invalid_emitted_event")
    journal.append_in(conn, [intake.journal_batch()])
    return [m["messageId"] for m in stamped]
