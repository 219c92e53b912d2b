"""Erasure in the identity graph: forget a person's identifiers and keep their hashes on a suppression list."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa

from accord.identity import tables as t
from accord.storage import utcnow


def key_hash(key: str) -> str:
    """SHA-256 (hex) of a normalised identifier key 'type:value': what the suppression list keeps."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass
class ErasedKeys:
    """The suppression list in memory: a set of hashes, reloaded only when the table has changed.

    `refresh` costs one small query (row count and newest sequence number); `hits` hashes a message's identifiers
    only when the list is not empty, so the intake pays nothing while nobody has been erased."""

    _hashes: frozenset[str] = frozenset()
    _version: tuple[int, int] = (-1, -1)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def refresh(self, conn: sa.Connection) -> None:
        """Reload the hashes if rows were added or removed since the last refresh."""
        e = t.erased_identifiers
        count, top = conn.execute(sa.select(sa.func.count(), sa.func.coalesce(sa.func.max(e.c.seq), 0))).one()
        version = (int(count), int(top))
        if version == self._version:
            return
        with self._lock:
            if version != self._version:
                self._hashes = frozenset(str(h) for (h,) in conn.execute(sa.select(e.c.key_hash)))
                self._version = version

    def refresh_from(self, engine: sa.Engine) -> None:
        """refresh() on a connection of its own."""
        with engine.connect() as conn:
            self.refresh(conn)

    def __len__(self) -> int:
        return len(self._hashes)

    def hits(self, keys: Iterable[str]) -> bool:
        """Whether any of KEYS (normalised 'type:value') belongs to an erased person."""
        hashes = self._hashes
        if not hashes:
            return False
        return any(key_hash(k) in hashes for k in keys)


@dataclass
class ErasedIdentity:
    """What the identity graph forgot for one erasure."""

    profile_ids: list[str]
    identifier_keys: list[str]
    rows: dict[str, int]


def profile_family(conn: sa.Connection, profile_id: str) -> list[str]:
    """PROFILE_ID and every profile that was merged into it (directly or through others)."""
    p = t.profiles
    family = [profile_id]
    frontier = [profile_id]
    while frontier:
        found = [r[0] for r in conn.execute(sa.select(p.c.id).where(p.c.merged_into.in_(frontier)))]
        found = [f for f in found if f not in family]
        family.extend(found)
        frontier = found
    return family


def profiles_holding(conn: sa.Connection, keys: Sequence[str]) -> list[str]:
    """The profiles that hold any of KEYS now."""
    i = t.identifiers
    if not keys:
        return []
    return sorted({str(p) for (p,) in conn.execute(sa.select(i.c.profile_id).where(i.c.key.in_(list(keys))))})


def suppress_keys_in(conn: sa.Connection, keys: Sequence[str], request_id: str) -> int:
    """Put KEYS on the suppression list (hashes only), in CONN's transaction; returns how many were new."""
    e = t.erased_identifiers
    hashes = {key_hash(k): k.partition(":")[0] for k in keys}
    if not hashes:
        return 0
    known = {str(h) for (h,) in conn.execute(sa.select(e.c.key_hash).where(e.c.key_hash.in_(list(hashes))))}
    now = utcnow()
    rows = [
        {"key_hash": h, "id_type": id_type, "request_id": request_id, "erased_at": now}
        for h, id_type in hashes.items()
        if h not in known
    ]
    if rows:
        conn.execute(e.insert(), rows)
    return len(rows)


def erase_profile_in(
    conn: sa.Connection, profile_id: str, extra_keys: Sequence[str], request_id: str
) -> ErasedIdentity:
    """Forget the person PROFILE_ID in the graph (profiles merged into it, identifiers, links, merges, conflicts,
    reviews, pending changes) and suppress every identifier they had plus EXTRA_KEYS, in CONN's transaction."""
    family = profile_family(conn, profile_id)
    i = t.identifiers
    keys = [str(k) for (k,) in conn.execute(sa.select(i.c.key).where(i.c.profile_id.in_(family)))]
    keys = list(dict.fromkeys([*keys, *extra_keys]))
    rows: dict[str, int] = {}
    suppressed = suppress_keys_in(conn, keys, request_id)
    members = t.identity_link_members
    link_keys = (
        [str(k) for (k,) in conn.execute(sa.select(members.c.link_key).where(members.c.identifier_key.in_(keys)))]
        if keys
        else []
    )
    rows["links"] = _delete(conn, t.identity_links.delete().where(t.identity_links.c.link_key.in_(link_keys)))
    rows["link_members"] = _delete(conn, members.delete().where(members.c.link_key.in_(link_keys)))
    rows["identifiers"] = _delete(conn, i.delete().where(i.c.profile_id.in_(family)))
    rows["changes"] = _delete(
        conn,
        t.identity_changes.delete().where(
            sa.or_(t.identity_changes.c.profile_id.in_(family), t.identity_changes.c.identifier_key.in_(keys))
        ),
    )
    m = t.identity_merges
    rows["merges"] = _delete(conn, m.delete().where(sa.or_(m.c.from_profile.in_(family), m.c.into_profile.in_(family))))
    c = t.identity_conflicts
    rows["conflicts"] = _delete(conn, c.delete().where(c.c.identifier_key.in_(keys)))
    candidates = conn.execute(
        sa.select(c.c.id, c.c.profile_ids).where(sa.or_(*[c.c.profile_ids.contains(pid) for pid in family]))
    )
    conflicted = [row.id for row in candidates if set(json.loads(row.profile_ids)) & set(family)]
    rows["conflicts"] += _delete(conn, c.delete().where(c.c.id.in_(conflicted)))
    v = t.identity_reviews
    rows["reviews"] = _delete(
        conn,
        v.delete().where(
            sa.or_(
                v.c.identifier_a.in_(keys),
                v.c.identifier_b.in_(keys),
                v.c.profile_a.in_(family),
                v.c.profile_b.in_(family),
            )
        ),
    )
    rows["profiles"] = _delete(conn, t.profiles.delete().where(t.profiles.c.id.in_(family)))
    rows["suppressed_identifiers"] = suppressed
    return ErasedIdentity(family, keys, rows)


def _delete(conn: sa.Connection, statement: sa.Delete) -> int:
    return int(conn.execute(statement).rowcount or 0)
