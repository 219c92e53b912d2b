"""Read side of the identity graph: look up profiles, identifiers, merges and conflicts."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from accord.identity import tables as t


def current_profile(engine: sa.Engine, profile_id: str) -> str | None:
    """Follow merges: the live profile that PROFILE_ID is (or was merged into); None if unknown."""
    seen: set[str] = set()
    with engine.connect() as conn:
        pid: str | None = profile_id
        while pid and pid not in seen:
            seen.add(pid)
            row = conn.execute(sa.select(t.profiles.c.merged_into).where(t.profiles.c.id == pid)).first()
            if row is None:
                return None
            if row.merged_into is None:
                return pid
            pid = row.merged_into
    return pid


def retired_into(conn: sa.Connection, profile_ids: list[str]) -> dict[str, str]:
    """{retired profile: the live one among PROFILE_IDS it was merged into (directly or through others)}."""
    found: dict[str, str] = {}
    frontier = {pid: pid for pid in profile_ids}
    for _ in range(20):  # merge chains are short; bounded in case of a cycle
        if not frontier:
            break
        rows = conn.execute(
            sa.select(t.profiles.c.id, t.profiles.c.merged_into).where(t.profiles.c.merged_into.in_(list(frontier)))
        ).all()
        nxt = {}
        for old, into in rows:
            if old not in found and old not in profile_ids:
                found[old] = frontier[into]
                nxt[old] = frontier[into]
        frontier = nxt
    return found


def profile_for_identifier(engine: sa.Engine, key: str) -> str | None:
    """The profile holding identifier KEY ('type:value', normalised)."""
    with engine.connect() as conn:
        return conn.execute(sa.select(t.identifiers.c.profile_id).where(t.identifiers.c.key == key)).scalar()


def identifiers_of(engine: sa.Engine, profile_id: str) -> list[dict[str, Any]]:
    """The identifiers a profile holds, grouped by nothing, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(t.identifiers.c.type, t.identifiers.c.value, t.identifiers.c.first_seen_at)
            .where(t.identifiers.c.profile_id == profile_id)
            .order_by(t.identifiers.c.first_seen_at, t.identifiers.c.key)
        )
        return [{"type": ty, "value": v, "first_seen": f} for ty, v, f in rows]


def merges_of(engine: sa.Engine, profile_id: str) -> list[dict[str, Any]]:
    """Every merge, regroup and unmerge that involved the profile, newest first."""
    m = t.identity_merges
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(m)
            .where(sa.or_(m.c.from_profile == profile_id, m.c.into_profile == profile_id))
            .order_by(m.c.at.desc(), m.c.id.desc())
        )
        return [
            {
                "id": r.id,
                "at": r.at,
                "kind": r.kind,
                "from_profile": r.from_profile,
                "into_profile": r.into_profile,
                "identifiers": json.loads(r.identifiers),
                "message_id": r.message_id,
                "source_id": r.source_id,
                "reason": r.reason,
            }
            for r in rows
        ]


def conflicts(
    engine: sa.Engine, profile_id: str | None = None, status: str | None = "open", limit: int = 100
) -> list[dict[str, Any]]:
    """Recorded conflicts awaiting review (optionally those touching one profile)."""
    c = t.identity_conflicts
    query = sa.select(c).order_by(c.c.at.desc(), c.c.id.desc()).limit(limit)
    if status:
        query = query.where(c.c.status == status)
    if profile_id:
        query = query.where(c.c.profile_ids.contains(profile_id))
    with engine.connect() as conn:
        return [
            {
                "id": r.id,
                "at": r.at,
                "kind": r.kind,
                "identifier": r.identifier_key,
                "profile_ids": json.loads(r.profile_ids),
                "message_id": r.message_id,
                "detail": r.detail,
                "status": r.status,
            }
            for r in conn.execute(query)
        ]


def count_profiles(engine: sa.Engine) -> int:
    """Live profiles (not merged into another) that hold at least one identifier."""
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count(sa.distinct(t.identifiers.c.profile_id)))).scalar_one())


def grouping(engine: sa.Engine) -> dict[str, str]:
    """identifier key -> profile id, for every identifier (evaluation and export)."""
    with engine.connect() as conn:
        return {k: p for k, p in conn.execute(sa.select(t.identifiers.c.key, t.identifiers.c.profile_id))}
