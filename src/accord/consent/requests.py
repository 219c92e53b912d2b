"""Data-subject requests in the consent domain: the audit of each request, and forgetting a person's consents."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from accord.consent.tables import consents, privacy_requests
from accord.identity.erasure import key_hash
from accord.storage import new_id, utcnow

KINDS = ("export", "erase")


def erase_consents_in(conn: sa.Connection, keys: Sequence[str]) -> int:
    """Delete every consent held by KEYS, in CONN's transaction (no timeline event: the person is being erased).
    The suppression list, not an opt-out row, is what keeps them from being contacted again."""
    deleted = 0
    keys = list(dict.fromkeys(keys))
    for start in range(0, len(keys), 500):
        result = conn.execute(consents.delete().where(consents.c.identifier_key.in_(keys[start : start + 500])))
        deleted += int(result.rowcount or 0)
    return deleted


def record_request_in(
    conn: sa.Connection,
    kind: str,
    identifier_key: str,
    requested_by: str,
    status: str,
    summary: Mapping[str, Any],
    requested_at: datetime | None = None,
) -> str:
    """Audit one data-subject request (the identifier is kept hashed, never in clear); returns its id."""
    if kind not in KINDS:
        raise ValueError(f"unknown request kind {kind!r}; known: {', '.join(KINDS)}")
    request_id = new_id()
    now = utcnow()
    conn.execute(
        privacy_requests.insert().values(
            id=request_id,
            kind=kind,
            identifier_hash=key_hash(identifier_key),
            identifier_type=identifier_key.partition(":")[0],
            requested_by=requested_by[:200],
            requested_at=requested_at or now,
            completed_at=now if status == "done" else None,
            status=status,
            summary=json.dumps(summary, default=str),
        )
    )
    return request_id


def complete_request_in(conn: sa.Connection, request_id: str, status: str, summary: Mapping[str, Any]) -> None:
    """Mark a request done (or failed) with what was done."""
    conn.execute(
        privacy_requests.update()
        .where(privacy_requests.c.id == request_id)
        .values(status=status, completed_at=utcnow(), summary=json.dumps(summary, default=str))
    )


def requests_for(engine: sa.Engine, identifier_key: str | None = None) -> list[dict[str, Any]]:
    """The audit trail, newest first (only the requests about IDENTIFIER_KEY when given)."""
    p = privacy_requests
    query = sa.select(p).order_by(p.c.requested_at.desc(), p.c.id.desc())
    if identifier_key:
        query = query.where(p.c.identifier_hash == key_hash(identifier_key))
    with engine.connect() as conn:
        return [
            {
                "id": r.id,
                "kind": r.kind,
                "identifier_type": r.identifier_type,
                "identifier_hash": r.identifier_hash,
                "requested_by": r.requested_by,
                "requested_at": r.requested_at.isoformat(),
                "completed_at": r.completed_at.isoformat() if r.completed_at else None,
                "status": r.status,
                "summary": json.loads(r.summary),
            }
            for r in conn.execute(query)
        ]
