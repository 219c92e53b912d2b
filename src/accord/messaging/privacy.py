"""Data-subject access: everything Accord holds about one person, as one JSON document (export only)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from accord.consent.service import Consents
from accord.messaging import tables as t
from accord.messaging.service import Messaging, MessagingError, delivery_view
from accord.profiles import service as profiles
from accord.storage.events import EventStore


def export_person(
    state: sa.Engine, events: EventStore, consents: Consents, messaging: Messaging, identifier: str
) -> dict[str, Any]:
    """Profile (identifiers, traits, channels), the whole timeline, consents, messages with their content and
    decisions, and hold-outs of the person holding IDENTIFIER."""
    try:
        pid = profiles.resolve(state, consents.rules, identifier)
    except profiles.InvalidIdentifier as exc:
        raise MessagingError(str(exc), "invalid_identifier") from exc
    if pid is None:
        raise MessagingError(f"no profile has identifier {identifier}", "unknown_profile", 404)
    timeline: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = profiles.timeline(state, events, pid, limit=1000, cursor=cursor)
        assert page is not None
        timeline.extend(page["events"])
        cursor = page["next_cursor"]
        if not cursor:
            break
    d, s = t.deliveries, t.suppressions
    with state.connect() as conn:
        messages = [
            delivery_view(r, with_content=True)
            for r in conn.execute(sa.select(d).where(d.c.profile_id == pid).order_by(d.c.created_at))
        ]
        holds = [
            {"reason": r.reason, "since": r.since, "until": r.until, "note": r.note}
            for r in conn.execute(sa.select(s).where(s.c.profile_id == pid))
        ]
    return {
        "profile": profiles.profile_view(state, events, pid),
        "timeline": timeline,
        "consents": consents.show(identifier)["consents"],
        "messages": messages,
        "hold_outs": holds,
    }
