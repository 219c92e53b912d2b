"""The call-centre task list: call-channel deliveries are the tasks; an agent's outcome moves the delivery on."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from accord.consent.service import OPTED_OUT
from accord.messaging import tables as t

if TYPE_CHECKING:
    from accord.messaging.service import Messaging

# What the agent reports -> the delivery state it becomes (and the timeline event it makes).
CALL_OUTCOMES = {"reached": "delivered", "no_answer": "failed", "refused": "unsubscribed"}
OPEN = "sent"  # a task waiting for its call


def call_tasks(messaging: Messaging, status: str | None = OPEN, limit: int = 500) -> list[dict[str, Any]]:
    """Call tasks, oldest due first: STATUS `sent` (default) = still to call; None = every status."""
    from accord.messaging.service import RANK, MessagingError

    if status is not None and status not in RANK:
        raise MessagingError(f"unknown status {status!r}; known: {', '.join(RANK)}", "invalid_status")
    d = t.deliveries
    query = sa.select(d).where(d.c.channel == "call")
    if status is not None:
        query = query.where(d.c.status == status)
    with messaging.engine.connect() as conn:
        rows = conn.execute(query.order_by(d.c.due_at, d.c.id).limit(max(1, min(limit, 5000)))).all()
    out = []
    for r in rows:
        entry = next((c for c in json.loads(r.content or "[]") if c["channel"] == "call"), None)
        fields = entry["fields"] if entry else {}
        out.append(
            {
                "id": r.id,
                "profile_id": r.profile_id,
                "name": fields.get("recipient_name"),
                "phone": entry["address"] if entry else None,
                "subject": fields.get("subject"),
                "script": fields.get("script"),
                "template": r.template,
                "purpose": r.purpose,
                "locale": r.locale,
                "status": r.status,
                "due_at": r.due_at.isoformat(),
                "sent_at": r.sent_at.isoformat() if r.sent_at else None,
            }
        )
    return out


def record_call(
    messaging: Messaging, delivery_id: str, outcome: str, agent: str | None = None, note: str | None = None
) -> dict[str, Any]:
    """An agent's outcome of a call task: reached -> delivered, no_answer -> failed, refused -> unsubscribed (and
    the phone opted out of calls for the message's purpose). Lands on the timeline through the state path."""
    from accord.messaging.service import MessagingError, delivery_view

    state = CALL_OUTCOMES.get(outcome)
    if state is None:
        raise MessagingError(f"unknown call outcome {outcome!r}; known: {', '.join(CALL_OUTCOMES)}", "invalid_outcome")
    d = t.deliveries
    with messaging.engine.begin() as conn:
        row = conn.execute(sa.select(d).where(d.c.id == delivery_id, d.c.channel == "call").with_for_update()).first()
        if row is None:
            raise MessagingError(f"no call task {delivery_id}", "unknown_task", 404)
        if row.status != OPEN:
            raise MessagingError(
                f"call task {delivery_id} is {row.status}, not open for an outcome", "task_closed", 409
            )
        details = {"outcome": outcome, "agent": agent, "note": note}
        messaging.record_state_in(conn, row, state, {k: v for k, v in details.items() if v is not None})
        if outcome == "refused":
            entry = next((c for c in json.loads(row.content or "[]") if c["channel"] == "call"), None)
            if entry and entry.get("identifier"):
                messaging.consents.set_in(
                    conn, entry["identifier"], row.purpose, "call", OPTED_OUT, f"call_center:{agent or 'agent'}"
                )
        fresh = conn.execute(sa.select(d).where(d.c.id == delivery_id)).one()
    return {**delivery_view(fresh), "outcome": outcome}
