"""Deterministic identity resolution: the one write path of the identity graph.

Every touch (the identifiers one message carried, with its time and message id) is resolved to a profile.
Identifiers seen together are linked; links union profiles unless the union would break a rule (two user
ids, more emails than the limit). When a rule would break, the whole linked component is regrouped by a
greedy pass over its links in (event time, message id) order, so the final grouping depends only on the set
of events, never on the order in which they arrived. Every reassignment of an identifier is written to
``identity_changes`` so the event store can follow.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from accord.identity import tables as t
from accord.identity.normalize import split_key
from accord.identity.rules import IdentityRules
from accord.storage import new_id, utcnow

MAX_COMPONENT = 2_000  # identifiers; a larger linked component is not regrouped (see docs/identity.md)
_CHUNK = 500


@dataclass(frozen=True)
class Touch:
    """The identifiers one message carried ('type:value', strongest first) and when it happened."""

    identifiers: Sequence[str]
    at: datetime
    message_id: str
    source_id: str | None = None
    previous_id: str | None = None


@dataclass(frozen=True)
class ProfileMerge:
    """A merge decided outside the events (probabilistic matching, a reviewer): join the profiles holding
    two identifiers, as if they had been seen together, with the reason (score, fields that agreed) for the audit."""

    identifier_a: str
    identifier_b: str
    reason: str
    message_id: str


@dataclass(frozen=True)
class Resolution:
    """Which identifier anchors the message on a profile, and that profile (None without identifiers)."""

    anchor: str | None
    profile_id: str | None


def link_key(keys: Iterable[str]) -> str:
    """Stable key of a set of identifiers."""
    return hashlib.sha1("\n".join(sorted(set(keys))).encode()).hexdigest()


def _link_key(distinct: Sequence[str]) -> str:
    """link_key of identifiers known to be distinct (no set to build)."""
    return hashlib.sha1("\n".join(sorted(distinct)).encode()).hexdigest()


@dataclass
class _Batch:
    """The working state of one resolve() call: caches of what was read, and writes not yet flushed."""

    conn: Connection
    rules: IdentityRules
    now: datetime
    owner: dict[str, str] = field(default_factory=dict)
    conflicted: dict[str, bool] = field(default_factory=dict)
    counts: dict[str, Counter[str]] = field(default_factory=dict)
    links: dict[str, tuple[datetime, str, bool]] = field(default_factory=dict)
    new_profiles: list[dict[str, object]] = field(default_factory=list)
    new_identifiers: list[dict[str, object]] = field(default_factory=list)
    new_links: dict[str, dict[str, object]] = field(default_factory=dict)
    new_members: list[dict[str, str]] = field(default_factory=list)

    def flush(self) -> None:
        """Write what is pending, so that queries see it."""
        if self.new_profiles:
            self.conn.execute(t.profiles.insert(), self.new_profiles)
            self.new_profiles = []
        if self.new_identifiers:
            self.conn.execute(t.identifiers.insert(), self.new_identifiers)
            self.new_identifiers = []
        if self.new_links:
            self.conn.execute(t.identity_links.insert(), list(self.new_links.values()))
            self.new_links = {}
        if self.new_members:
            self.conn.execute(t.identity_link_members.insert(), self.new_members)
            self.new_members = []


_OWNERS = (
    sa.select(t.identifiers.c.key, t.identifiers.c.profile_id, t.profiles.c.conflicted)
    .join(t.profiles, t.profiles.c.id == t.identifiers.c.profile_id)
    .where(t.identifiers.c.key.in_(sa.bindparam("keys", expanding=True)))
)
_LINKS = sa.select(
    t.identity_links.c.link_key,
    t.identity_links.c.first_at,
    t.identity_links.c.first_message_id,
    t.identity_links.c.severed,
).where(t.identity_links.c.link_key.in_(sa.bindparam("keys", expanding=True)))
_KEYS_OF = sa.select(t.identifiers.c.key).where(t.identifiers.c.profile_id == sa.bindparam("pid"))
_MOVE = (
    t.identifiers.update()
    .where(t.identifiers.c.key.in_(sa.bindparam("keys", expanding=True)))
    .values(profile_id=sa.bindparam("to"))
)
_SET_MERGED_INTO = (
    t.profiles.update().where(t.profiles.c.id == sa.bindparam("pid")).values(merged_into=sa.bindparam("into"))
)
_FLAGS = sa.select(t.profiles.c.id, t.profiles.c.conflicted).where(
    t.profiles.c.id.in_(sa.bindparam("pids", expanding=True))
)
_COUNTS = (
    sa.select(t.identifiers.c.profile_id, t.identifiers.c.type, sa.func.count())
    .where(t.identifiers.c.profile_id.in_(sa.bindparam("pids", expanding=True)))
    .group_by(t.identifiers.c.profile_id, t.identifiers.c.type)
)


class IdentityGraph:
    """Resolves touches to profiles and keeps the graph's tables and change log."""

    def __init__(self, engine: sa.Engine, rules: IdentityRules) -> None:
        self.engine = engine
        self.rules = rules
        self._known_links: dict[str, datetime] = {}
        # Regroups write only what differs from the stored state (same result); False: rewrite every flag of the
        # component and look each conflict up on its own, as before (the differential test compares the two).
        self.incremental_writes = True

    # ------------------------------------------------------------------ resolution
    def resolve(self, touches: Sequence[Touch]) -> list[Resolution]:
        """Resolve a batch of touches in one transaction; returns one resolution per touch, in order."""
        try:
            with self.engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    conn.exec_driver_sql("SELECT pg_advisory_xact_lock(434343)")  # one graph writer at a time
                batch = _Batch(conn, self.rules, utcnow())
                wanted: set[str] = set()
                for touch in touches:
                    wanted.update(touch.identifiers)
                    if touch.previous_id:
                        wanted.add(f"user_id:{touch.previous_id}")
                        wanted.add(f"anonymous_id:{touch.previous_id}")
                self._load_owners(batch, wanted, counts=False)
                prepared, lks = self._prepare(batch, touches)
                self._load_links(batch, {lk for lk in lks if lk})
                self._load_details(batch, self._pids_to_decide(batch, prepared, lks, touches))
                results = [
                    self._resolve_one(batch, keys, lk, touch)
                    for keys, lk, touch in zip(prepared, lks, touches, strict=True)
                ]
                batch.flush()
        except BaseException:
            self._known_links.clear()  # the cache may name links the rolled-back transaction wrote
            raise
        return results

    def _prepare(self, batch: _Batch, touches: Sequence[Touch]) -> tuple[list[list[str]], list[str]]:
        """Per touch, its identifiers in order and their link key ('' for fewer than two). The messages of one
        visit carry the same identifiers: those are ordered and hashed once (the lists are shared, never changed)."""
        prepared: list[list[str]] = []
        lks: list[str] = []
        seen: dict[tuple[str, ...], tuple[list[str], str]] = {}
        for touch in touches:
            if touch.previous_id:
                keys = self._keys(batch, touch)
                prepared.append(keys)
                lks.append(_link_key(keys) if len(keys) > 1 else "")
                continue
            signature = tuple(touch.identifiers)
            known = seen.get(signature)
            if known is None:
                keys = self._keys(batch, touch)
                known = seen[signature] = (keys, _link_key(keys) if len(keys) > 1 else "")
            prepared.append(known[0])
            lks.append(known[1])
        return prepared, lks

    def _pids_to_decide(
        self, batch: _Batch, prepared: Sequence[list[str]], lks: Sequence[str], touches: Sequence[Touch]
    ) -> set[str]:
        """The profiles of the touches that may change the graph (a new identifier, a link not known yet): only
        their limits and conflict flags are needed; a touch of known identifiers seen together before needs none."""
        known_links = self._known_links
        owner = batch.owner
        pids: set[str] = set()
        for keys, lk, touch in zip(prepared, lks, touches, strict=True):
            if all(k in owner for k in keys):
                if not lk:
                    continue  # one known identifier
                known_at = known_links.get(lk)
                if known_at is not None and touch.at >= known_at:
                    continue  # a link applied before
                owners = {owner[k] for k in keys}
                if len(owners) == 1:
                    continue  # a link within one profile: only its conflict flag counts (loaded with the owners)
            else:
                owners = {owner[k] for k in keys if k in owner}
            pids.update(owners)
        return pids

    def _load_details(self, batch: _Batch, pids: Iterable[str]) -> None:
        """Conflict flags and identifier counts of PIDS (those not loaded yet), a few queries for all of them."""
        unflagged = [p for p in pids if p not in batch.conflicted]
        for i in range(0, len(unflagged), _CHUNK):
            rows = batch.conn.execute(_FLAGS, {"pids": unflagged[i : i + _CHUNK]})
            batch.conflicted.update({pid: bool(flag) for pid, flag in rows})
        self._load_counts(batch, pids)

    def _load_counts(self, batch: _Batch, pids: Iterable[str]) -> None:
        """Identifier counts per type of PIDS (those not counted yet), a query per chunk."""
        uncounted = [p for p in pids if p not in batch.counts]
        for i in range(0, len(uncounted), _CHUNK):
            chunk = uncounted[i : i + _CHUNK]
            for pid in chunk:
                batch.counts[pid] = Counter()
            for pid, id_type, n in batch.conn.execute(_COUNTS, {"pids": chunk}):
                batch.counts[pid][id_type] = int(n)

    def _load_owners(self, batch: _Batch, keys: Iterable[str], counts: bool = True) -> None:
        """The owners (and their conflict flags) of KEYS not loaded yet; with COUNTS, their identifier counts."""
        missing = [k for k in keys if k not in batch.owner]
        pids: set[str] = set()
        for i in range(0, len(missing), _CHUNK):
            for key, pid, conflicted in batch.conn.execute(_OWNERS, {"keys": missing[i : i + _CHUNK]}):
                batch.owner[key] = pid
                batch.conflicted[pid] = bool(conflicted)
                pids.add(pid)
        if not counts:
            return
        self._load_counts(batch, pids)

    def _load_links(self, batch: _Batch, keys: set[str]) -> None:
        missing = [k for k in keys if k not in batch.links and k not in self._known_links]
        for i in range(0, len(missing), _CHUNK):
            for lk, first_at, first_msg, severed in batch.conn.execute(_LINKS, {"keys": missing[i : i + _CHUNK]}):
                batch.links[lk] = (first_at, first_msg, bool(severed))

    def _keys(self, batch: _Batch, touch: Touch) -> list[str]:
        """The touch's distinct identifiers, strongest first."""
        keys = list(dict.fromkeys(touch.identifiers))
        if touch.previous_id:
            prev_user = f"user_id:{touch.previous_id}"
            prev = prev_user if prev_user in batch.owner else f"anonymous_id:{touch.previous_id}"
            if prev not in keys:
                keys.append(prev)
        keys.sort(key=self.rules.key_order)
        return keys

    def _resolve_one(self, batch: _Batch, keys: list[str], lk: str, touch: Touch) -> Resolution:
        """LK: the link key of KEYS ('' for fewer than two)."""
        if not keys:
            return Resolution(None, None)
        owner = batch.owner
        fresh = [k for k in keys if k not in owner]
        if fresh:
            self._place_new(batch, keys, fresh, touch.at)
        if lk:
            known_at = self._known_links.get(lk)
            if known_at is None or touch.at < known_at:
                self._apply_link(batch, keys, lk, touch)
        anchor = keys[0]
        return Resolution(anchor, batch.owner[anchor])

    def _place_new(self, batch: _Batch, keys: list[str], fresh: list[str], at: datetime) -> None:
        """Give never-seen identifiers a home: the profile the touch already points at, if the rules allow,
        else one new profile for all of them, else a new profile each (the link logic then sorts them out)."""
        fresh_counts = Counter(split_key(k)[0] for k in fresh)
        pids = sorted({batch.owner[k] for k in keys if k in batch.owner})
        if pids and not self._is_conflicted(batch, pids):
            if self._fits(self._type_counts(batch, pids) + fresh_counts):
                self._add_identifiers(batch, fresh, pids[0], at)  # the oldest: it survives the merge
                return
        elif not pids and self._fits(fresh_counts):
            self._add_identifiers(batch, fresh, self._new_profile(batch), at)
            return
        for key in fresh:
            self._add_identifiers(batch, [key], self._new_profile(batch), at)

    def _new_profile(self, batch: _Batch) -> str:
        pid = new_id()
        batch.new_profiles.append({"id": pid, "created_at": batch.now, "conflicted": False})
        batch.conflicted[pid] = False
        batch.counts[pid] = Counter()
        return pid

    def _add_identifiers(self, batch: _Batch, keys: list[str], pid: str, at: datetime) -> None:
        counts = batch.counts.get(pid)
        for key in keys:
            id_type, value = split_key(key)
            batch.new_identifiers.append(
                {"key": key, "type": id_type, "value": value, "profile_id": pid, "first_seen_at": at}
            )
            batch.owner[key] = pid
            if counts is not None:
                counts[id_type] += 1

    def _store_link(self, batch: _Batch, keys: list[str], lk: str, touch: Touch) -> bool:
        """Record the link; returns True when it is new or now has an earlier first time."""
        known = batch.links.get(lk)
        if known is None and lk in self._known_links:
            self._load_links_now(batch, lk)
            known = batch.links.get(lk)
        if known is None:
            batch.new_links[lk] = {
                "link_key": lk,
                "identifiers": json.dumps(keys),
                "first_at": touch.at,
                "first_message_id": touch.message_id,
                "severed": False,
                "rejected": False,
            }
            batch.new_members.extend({"identifier_key": k, "link_key": lk} for k in keys)
            batch.links[lk] = (touch.at, touch.message_id, False)
            self._known_links[lk] = touch.at
            return True
        first_at, first_msg, severed = known
        if severed:
            self._known_links[lk] = datetime.min.replace(tzinfo=touch.at.tzinfo)
            return False
        if (touch.at, touch.message_id) < (first_at, first_msg):
            if lk in batch.new_links:
                batch.new_links[lk].update(first_at=touch.at, first_message_id=touch.message_id)
            else:
                batch.conn.execute(
                    t.identity_links.update()
                    .where(t.identity_links.c.link_key == lk)
                    .values(first_at=touch.at, first_message_id=touch.message_id)
                )
            batch.links[lk] = (touch.at, touch.message_id, False)
            self._known_links[lk] = touch.at
            return True
        self._known_links[lk] = first_at
        return False

    def _load_links_now(self, batch: _Batch, lk: str) -> None:
        for key, first_at, first_msg, severed in batch.conn.execute(_LINKS, {"keys": [lk]}):
            batch.links[key] = (first_at, first_msg, bool(severed))

    def _is_conflicted(self, batch: _Batch, pids: Iterable[str]) -> bool:
        pids = list(pids)
        unknown = [p for p in pids if p not in batch.conflicted]
        if unknown:
            batch.flush()
            rows = batch.conn.execute(
                sa.select(t.profiles.c.id, t.profiles.c.conflicted).where(t.profiles.c.id.in_(unknown))
            )
            batch.conflicted.update({pid: bool(flag) for pid, flag in rows})
        return any(batch.conflicted.get(p, False) for p in pids)

    def _type_counts(self, batch: _Batch, pids: Sequence[str]) -> Counter[str]:
        missing = [p for p in pids if p not in batch.counts]
        if missing:
            batch.flush()
            for pid in missing:
                batch.counts[pid] = Counter()
            for pid, id_type, n in batch.conn.execute(_COUNTS, {"pids": missing}):
                batch.counts[pid][id_type] = int(n)
        total: Counter[str] = Counter()
        for pid in pids:
            total.update(batch.counts[pid])
        return total

    def _fits(self, counts: Counter[str]) -> bool:
        return all(n <= self.rules.limit(id_type) for id_type, n in counts.items())

    def _apply_link(self, batch: _Batch, keys: list[str], lk: str, touch: Touch) -> None:
        if not self._store_link(batch, keys, lk, touch):
            return
        pids = sorted({batch.owner[k] for k in keys})
        if len(pids) == 1 and not self._is_conflicted(batch, pids):
            return
        if not self._is_conflicted(batch, pids) and self._fits(self._type_counts(batch, pids)):
            self._merge(batch, pids, keys, touch)
            return
        self.regroup(batch.conn, keys, reason="rule conflict", message_id=touch.message_id, batch=batch)

    def _merge(
        self,
        batch: _Batch,
        pids: list[str],
        keys: list[str],
        touch: Touch,
        kind: str = "merge",
        reason: str | None = None,
    ) -> None:
        batch.flush()
        survivor, others = pids[0], pids[1:]
        for other in others:
            moved = [k for (k,) in batch.conn.execute(_KEYS_OF, {"pid": other})]
            self._move(batch, moved, survivor)
            batch.conn.execute(_SET_MERGED_INTO, {"pid": other, "into": survivor})
            batch.conn.execute(
                t.identity_merges.insert(),
                {
                    "id": new_id(),
                    "at": batch.now,
                    "kind": kind,
                    "from_profile": other,
                    "into_profile": survivor,
                    "identifiers": json.dumps(sorted(moved)),
                    "message_id": touch.message_id,
                    "source_id": touch.source_id,
                    "reason": reason or "identifiers seen together: " + ", ".join(keys),
                },
            )

    def _move(self, batch: _Batch, keys: Sequence[str], pid: str) -> None:
        if not keys:
            return
        batch.flush()
        for i in range(0, len(keys), _CHUNK):
            batch.conn.execute(_MOVE, {"keys": list(keys[i : i + _CHUNK]), "to": pid})
        batch.conn.execute(
            t.identity_changes.insert(),
            [{"identifier_key": k, "profile_id": pid, "at": batch.now} for k in keys],
        )
        for k in keys:
            batch.counts.pop(batch.owner.get(k, ""), None)
            batch.owner[k] = pid
        batch.counts.pop(pid, None)

    def merge_profiles(self, merges: Sequence[ProfileMerge], kind: str = "match") -> list[str | None]:
        """Join, in one transaction, the profiles holding each pair of identifiers; per merge, the surviving
        profile, or None when refused: an identifier is unknown, the rules forbid it (two user ids, limits, a
        conflicted profile), or the same pair was unmerged before. The pair is stored as a link, so regrouping
        keeps it and an unmerge severs it; the merge is audited with KIND and the merge's reason."""
        results: list[str | None] = []
        try:
            with self.engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    conn.exec_driver_sql("SELECT pg_advisory_xact_lock(434343)")
                batch = _Batch(conn, self.rules, utcnow())
                self._load_owners(batch, {k for m in merges for k in (m.identifier_a, m.identifier_b)})
                results, slow = self._merge_many(batch, merges, kind)
                for i in slow:  # pairs touching a conflicted profile: one by one, regrouping as the rules say
                    results[i] = self._merge_pair(batch, merges[i], kind)
                batch.flush()
        except BaseException:
            self._known_links.clear()
            raise
        return results

    def _merge_many(
        self, batch: _Batch, merges: Sequence[ProfileMerge], kind: str
    ) -> tuple[list[str | None], list[int]]:
        """The common case in bulk: plan the unions of unconflicted profiles within the limits in memory, then
        write them with a few statements. Returns the results and the indexes left for the one-by-one path."""
        conn, now = batch.conn, batch.now
        rank = self.rules.rank
        prepared = [sorted({m.identifier_a, m.identifier_b}, key=lambda k: (rank(split_key(k)[0]), k)) for m in merges]
        self._load_links(batch, {link_key(keys) for keys in prepared if len(keys) == 2})
        parent: dict[str, str] = {}
        members: dict[str, list[str]] = {}
        counts: dict[str, Counter[str]] = {}

        def find(pid: str) -> str:
            parent.setdefault(pid, pid)
            while parent[pid] != pid:
                parent[pid] = parent[parent[pid]]
                pid = parent[pid]
            return pid

        results: list[str | None] = [None] * len(merges)
        slow: list[int] = []
        steps: list[tuple[int, str, str, list[str]]] = []  # (merge index, into root, from root, pids moved)
        for i, keys in enumerate(prepared):
            if len(keys) != 2 or any(k not in batch.owner for k in keys):
                continue
            pa, pb = batch.owner[keys[0]], batch.owner[keys[1]]
            if batch.conflicted.get(pa) or batch.conflicted.get(pb):
                slow.append(i)
                continue
            ra, rb = find(pa), find(pb)
            if ra == rb:
                results[i] = ra
                continue
            lk = link_key(keys)
            if lk in batch.links and batch.links[lk][2]:
                continue  # severed by an unmerge
            for root in (ra, rb):
                if root not in counts:
                    counts[root] = Counter(batch.counts.get(root, Counter()))
                    members[root] = [root]
            if not self._fits(counts[ra] + counts[rb]):
                continue  # e.g. two user ids: never merged automatically
            into, other = sorted((ra, rb))
            parent[other] = into
            counts[into] = counts[into] + counts.pop(other)
            moved = members.pop(other)
            members[into].extend(moved)
            steps.append((i, into, other, moved))
            if lk not in batch.links:
                batch.new_links[lk] = {
                    "link_key": lk,
                    "identifiers": json.dumps(keys),
                    "first_at": now,
                    "first_message_id": merges[i].message_id,
                    "severed": False,
                    "rejected": False,
                }
                batch.new_members.extend({"identifier_key": k, "link_key": lk} for k in keys)
                batch.links[lk] = (now, merges[i].message_id, False)
                self._known_links[lk] = now
        if not steps:
            return results, slow
        batch.flush()
        moved_pids = sorted({pid for _i, _into, _other, pids in steps for pid in pids})
        keys_of: dict[str, list[str]] = defaultdict(list)
        for j in range(0, len(moved_pids), _CHUNK):
            rows = conn.execute(
                sa.select(t.identifiers.c.key, t.identifiers.c.profile_id).where(
                    t.identifiers.c.profile_id.in_(moved_pids[j : j + _CHUNK])
                )
            )
            for key, pid in rows:
                keys_of[pid].append(key)
        for keys in keys_of.values():
            keys.sort()  # the store's row order never decides the order of the changes written
        final = {pid: find(pid) for pid in moved_pids}
        moves = [{"k": key, "p": final[pid]} for pid in moved_pids for key in keys_of[pid]]
        if moves:
            conn.execute(  # one statement per merged profile (by the profile_id index), not one per identifier
                t.identifiers.update()
                .where(t.identifiers.c.profile_id == sa.bindparam("old"))
                .values(profile_id=sa.bindparam("new")),
                [{"old": pid, "new": final[pid]} for pid in moved_pids],
            )
            conn.execute(
                t.identity_changes.insert(),
                [{"identifier_key": m["k"], "profile_id": m["p"], "at": now} for m in moves],
            )
        conn.execute(
            t.profiles.update().where(t.profiles.c.id == sa.bindparam("pid")).values(merged_into=sa.bindparam("into")),
            [{"pid": pid, "into": final[pid]} for pid in moved_pids],
        )
        conn.execute(
            t.identity_merges.insert(),
            [
                {
                    "id": new_id(),
                    "at": now,
                    "kind": kind,
                    "from_profile": other,
                    "into_profile": into,
                    "identifiers": json.dumps(sorted(k for pid in pids for k in keys_of[pid])),
                    "message_id": merges[i].message_id,
                    "source_id": None,
                    "reason": merges[i].reason,
                }
                for i, into, other, pids in steps
            ],
        )
        for m in moves:
            batch.owner[m["k"]] = m["p"]
        for pid in moved_pids:
            batch.counts.pop(pid, None)
        for root in {final[pid] for pid in moved_pids}:
            batch.counts[root] = counts[root]
        skipped = set(slow)
        for i, keys in enumerate(prepared):
            owners = {batch.owner.get(k) for k in keys}
            if i not in skipped and len(keys) == 2 and len(owners) == 1 and None not in owners:
                results[i] = owners.pop()
        return results, slow

    def _merge_pair(self, batch: _Batch, merge: ProfileMerge, kind: str) -> str | None:
        keys = sorted({merge.identifier_a, merge.identifier_b}, key=lambda k: (self.rules.rank(split_key(k)[0]), k))
        if any(k not in batch.owner for k in keys):
            self._load_owners(batch, keys)
            if any(k not in batch.owner for k in keys):
                return None
        pids = sorted({batch.owner[k] for k in keys})
        if len(pids) == 1:
            return pids[0]
        conflicted = self._is_conflicted(batch, pids)
        if not conflicted and not self._fits(self._type_counts(batch, pids)):
            return None  # e.g. two user ids: never merged automatically
        lk = link_key(keys)
        self._load_links_now(batch, lk)
        if lk in batch.links and batch.links[lk][2]:
            return None  # severed by an unmerge: the same evidence does not merge them again
        touch = Touch(keys, batch.now, merge.message_id)
        self._store_link(batch, keys, lk, touch)
        if conflicted:  # as for any evidence on a conflicted profile: regroup the component within the limits
            self.regroup(batch.conn, keys, reason=merge.reason, message_id=merge.message_id, batch=batch)
            owners = {batch.owner[k] for k in keys}
            return owners.pop() if len(owners) == 1 else None
        self._merge(batch, pids, keys, touch, kind=kind, reason=merge.reason)
        return pids[0]

    # ------------------------------------------------------------------ regrouping
    def _component(self, conn: Connection, seed: Iterable[str]) -> tuple[set[str], dict[str, tuple]]:
        comp = set(seed)
        frontier = list(comp)
        links: dict[str, tuple] = {}
        while frontier and len(comp) <= MAX_COMPONENT:
            chunk, frontier = frontier[:_CHUNK], frontier[_CHUNK:]
            rows = conn.execute(
                sa.select(
                    t.identity_links.c.link_key,
                    t.identity_links.c.identifiers,
                    t.identity_links.c.first_at,
                    t.identity_links.c.first_message_id,
                    t.identity_links.c.rejected,
                )
                .join(t.identity_link_members, t.identity_link_members.c.link_key == t.identity_links.c.link_key)
                .where(t.identity_link_members.c.identifier_key.in_(chunk), t.identity_links.c.severed.is_(False))
            )
            for lk, ids_json, first_at, first_msg, rejected in rows:
                if lk in links:
                    continue
                ids = json.loads(ids_json)
                links[lk] = (first_at, first_msg, ids, bool(rejected))
                for k in ids:
                    if k not in comp:
                        comp.add(k)
                        frontier.append(k)
        return comp, links

    def regroup(
        self,
        conn: Connection,
        seed: Iterable[str],
        reason: str,
        message_id: str | None = None,
        batch: _Batch | None = None,
    ) -> None:
        """Recompute the grouping of the component around SEED from its links in time order."""
        batch = batch or _Batch(conn, self.rules, utcnow())
        batch.flush()
        seed = list(seed)
        comp, links = self._component(conn, seed)
        if len(comp) > MAX_COMPONENT:
            # A hub (a kiosk, a shared test account) links thousands of identifiers: regrouping it would cost more
            # than it can tell. Keep the current grouping, keep this evidence apart, and ask for review.
            lk = link_key(seed)
            conn.execute(t.identity_links.update().where(t.identity_links.c.link_key == lk).values(rejected=True))
            if message_id is None or not self._conflict_recorded(conn, seed[0], message_id):
                conn.execute(
                    t.identity_conflicts.insert().values(
                        id=new_id(),
                        at=batch.now,
                        kind="component_too_large",
                        identifier_key=seed[0],
                        profile_ids=json.dumps(sorted({batch.owner[k] for k in seed if k in batch.owner})),
                        message_id=message_id,
                        detail=f"identifiers {', '.join(seed)} link more than {MAX_COMPONENT} identifiers together; "
                        "kept apart without regrouping",
                        status="open",
                    )
                )
            return
        self._load_owners(batch, comp)
        parent = {k: k for k in comp}
        counts = {k: Counter({split_key(k)[0]: 1}) for k in comp}

        def find(k: str) -> str:
            while parent[k] != k:
                parent[k] = parent[parent[k]]
                k = parent[k]
            return k

        rejected: list[tuple[str, list[str]]] = []
        limit = self.rules.limit
        for lk, (_at, _msg, ids, _rejected) in sorted(links.items(), key=lambda kv: (kv[1][0], kv[1][1], kv[0])):
            ordered = sorted(ids, key=lambda k: (self.rules.rank(split_key(k)[0]), k))
            root = find(ordered[0])
            for k in ordered[1:]:
                other = find(k)
                if other == root:
                    continue
                if not self.incremental_writes:  # as before (the differential test compares the two)
                    if self._fits(counts[root] + counts[other]):
                        parent[other] = root
                        counts[root] = counts[root] + counts.pop(other)
                    else:
                        rejected.append((lk, ordered))
                    continue
                mine, theirs = counts[root], counts[other]  # every count is positive: the same test as _fits(sum)
                if all(mine[ty] + theirs[ty] <= limit(ty) for ty in mine.keys() | theirs.keys()):
                    parent[other] = root
                    mine.update(counts.pop(other))  # each key's Counter is its own: updated in place
                else:
                    rejected.append((lk, ordered))
        groups: dict[str, set[str]] = defaultdict(set)
        for k in comp:
            groups[find(k)].add(k)
        ordered_groups = sorted(groups.values(), key=lambda g: (-len(g), min(g)))
        used: set[str] = set()
        created: set[str] = set()
        assignment: dict[str, str] = {}
        for group in ordered_groups:
            tally = Counter(batch.owner[k] for k in group)
            choices = sorted((p for p in tally if p not in used), key=lambda p: (-tally[p], p))
            if choices:
                pid = choices[0]
            else:
                pid = new_id()
                conn.execute(t.profiles.insert().values(id=pid, created_at=batch.now, conflicted=False))
                created.add(pid)
            used.add(pid)
            for k in group:
                assignment[k] = pid
        old_pids = {batch.owner[k] for k in comp}
        by_target: dict[str, list[str]] = defaultdict(list)
        flows: dict[tuple[str, str], list[str]] = defaultdict(list)
        for k in sorted(comp):  # sorted: the rows' order (and so the ids given below) never depends on the store's
            if batch.owner[k] != assignment[k]:
                by_target[assignment[k]].append(k)
                flows[(batch.owner[k], assignment[k])].append(k)
        for pid, keys in sorted(by_target.items()):
            self._move(batch, sorted(keys), pid)
        for (src, dst), keys in sorted(flows.items()):
            conn.execute(
                t.identity_merges.insert().values(
                    id=new_id(),
                    at=batch.now,
                    kind="regroup",
                    from_profile=src,
                    into_profile=dst,
                    identifiers=json.dumps(sorted(keys)),
                    message_id=message_id,
                    source_id=None,
                    reason=reason,
                )
            )
        if not self.incremental_writes:
            self._write_regroup_flags_full(batch, links, old_pids, used, flows, rejected, assignment)
            return
        self._write_regroup_flags(batch, links, old_pids, used, flows, rejected, assignment, created)

    def _write_regroup_flags_full(
        self,
        batch: _Batch,
        links: dict[str, tuple],
        old_pids: set[str],
        used: set[str],
        flows: dict[tuple[str, str], list[str]],
        rejected: list[tuple[str, list[str]]],
        assignment: dict[str, str],
    ) -> None:
        """The regroup's flags, links and conflicts written as they always were: every profile and link of the
        component updated, every rejected link's conflict looked up on its own (kept to check the other path)."""
        conn = batch.conn
        for pid in old_pids - used:
            heirs = Counter({dst: len(keys) for (src, dst), keys in flows.items() if src == pid})
            target = sorted(heirs, key=lambda p: (-heirs[p], p))[0] if heirs else None
            conn.execute(t.profiles.update().where(t.profiles.c.id == pid).values(merged_into=target))
        flag = bool(rejected)
        for pid in used:
            conn.execute(t.profiles.update().where(t.profiles.c.id == pid).values(conflicted=flag, merged_into=None))
            batch.conflicted[pid] = flag
        rejected_keys = {lk for lk, _ in rejected}
        all_links = list(links)
        for i in range(0, len(all_links), _CHUNK):
            chunk = all_links[i : i + _CHUNK]
            conn.execute(
                t.identity_links.update()
                .where(t.identity_links.c.link_key.in_(chunk))
                .values(rejected=sa.case((t.identity_links.c.link_key.in_(rejected_keys or [""]), True), else_=False))
            )
        for lk, ordered in rejected:
            strongest, first_message = ordered[0], links[lk][1]
            if self._conflict_recorded(conn, strongest, first_message):
                continue
            row = self._conflict_row(batch, lk, ordered, first_message, assignment)
            conn.execute(t.identity_conflicts.insert(), row)

    def _write_regroup_flags(
        self,
        batch: _Batch,
        links: dict[str, tuple],
        old_pids: set[str],
        used: set[str],
        flows: dict[tuple[str, str], list[str]],
        rejected: list[tuple[str, list[str]]],
        assignment: dict[str, str],
        created: set[str],
    ) -> None:
        """The same final state as _write_regroup_flags_full, writing only what differs from what is stored.

        Past a limit, every new identifier regroups its component, yet the grouping, the flags and the rejected
        links of the rest of the component usually stay as the previous regroup left them: the profiles' flags,
        the links' rejected flags and the conflicts already recorded are read in a few queries, compared with
        what the replay decided, and only the differences are written (the decisions themselves are unchanged).
        """
        conn = batch.conn
        wanted: dict[str, dict[str, object]] = {}  # pid -> the columns the full path would set
        for pid in old_pids - used:
            heirs = Counter({dst: len(keys) for (src, dst), keys in flows.items() if src == pid})
            target = sorted(heirs, key=lambda p: (-heirs[p], p))[0] if heirs else None
            wanted[pid] = {"merged_into": target}
        flag = bool(rejected)
        for pid in used:
            wanted[pid] = {"conflicted": flag, "merged_into": None}
            batch.conflicted[pid] = flag
        stored: dict[str, dict[str, object]] = {pid: {"conflicted": False, "merged_into": None} for pid in created}
        to_read = sorted(p for p in wanted if p not in created)
        for i in range(0, len(to_read), _CHUNK):
            rows = conn.execute(
                sa.select(t.profiles.c.id, t.profiles.c.conflicted, t.profiles.c.merged_into).where(
                    t.profiles.c.id.in_(to_read[i : i + _CHUNK])
                )
            )
            for pid, conflicted, merged_into in rows:
                stored[pid] = {"conflicted": bool(conflicted), "merged_into": merged_into}
        for pid in sorted(wanted):
            values = wanted[pid]
            have = stored.get(pid)
            if have is not None and all(have[c] == v for c, v in values.items()):
                continue
            conn.execute(t.profiles.update().where(t.profiles.c.id == pid).values(**values))
        rejected_keys = {lk for lk, _ in rejected}
        now_rejected = sorted(lk for lk, link in links.items() if lk in rejected_keys and not link[3])
        now_kept = sorted(lk for lk, link in links.items() if lk not in rejected_keys and link[3])
        for changed, value in ((now_rejected, True), (now_kept, False)):
            for i in range(0, len(changed), _CHUNK):
                conn.execute(
                    t.identity_links.update()
                    .where(t.identity_links.c.link_key.in_(changed[i : i + _CHUNK]))
                    .values(rejected=value)
                )
        strongest_keys = sorted({ordered[0] for _lk, ordered in rejected})
        recorded: set[tuple[str, str | None]] = set()
        for i in range(0, len(strongest_keys), _CHUNK):
            found = conn.execute(
                sa.select(t.identity_conflicts.c.identifier_key, t.identity_conflicts.c.message_id).where(
                    t.identity_conflicts.c.identifier_key.in_(strongest_keys[i : i + _CHUNK])
                )
            )
            recorded.update((key, msg) for key, msg in found)
        new_conflicts: list[dict[str, object]] = []
        for lk, ordered in rejected:
            strongest, first_message = ordered[0], links[lk][1]
            if (strongest, first_message) in recorded:
                continue
            recorded.add((strongest, first_message))
            new_conflicts.append(self._conflict_row(batch, lk, ordered, first_message, assignment))
        if new_conflicts:
            conn.execute(t.identity_conflicts.insert(), new_conflicts)

    def _conflict_row(
        self, batch: _Batch, lk: str, ordered: list[str], first_message: str, assignment: dict[str, str]
    ) -> dict[str, object]:
        return {
            "id": new_id(),
            "at": batch.now,
            "kind": self._conflict_kind(ordered),
            "identifier_key": ordered[0],
            "profile_ids": json.dumps(sorted({assignment[k] for k in ordered})),
            "message_id": first_message,
            "detail": f"identifiers {', '.join(ordered)} were seen together but joining them would break "
            f"the identity limits ({self._limits_text(ordered)}); kept apart",
            "status": "open",
        }

    def _conflict_recorded(self, conn: Connection, identifier: str, message_id: str) -> bool:
        found = conn.execute(
            sa.select(t.identity_conflicts.c.id)
            .where(
                t.identity_conflicts.c.identifier_key == identifier,
                t.identity_conflicts.c.message_id == message_id,
            )
            .limit(1)
        ).first()
        return found is not None

    def _conflict_kind(self, keys: Sequence[str]) -> str:
        types = Counter(split_key(k)[0] for k in keys)
        return "user_id_conflict" if "user_id" in types else "limit_exceeded"

    def _limits_text(self, keys: Sequence[str]) -> str:
        types = sorted({split_key(k)[0] for k in keys})
        return ", ".join(f"{ty} at most {self.rules.limit(ty)}" for ty in types)

    # ------------------------------------------------------------------ change log and unmerge
    def changes_since(self, seq: int, limit: int = 200_000) -> list[tuple[int, str, str]]:
        """Identifier reassignments after SEQ, oldest first: (seq, identifier key, profile id)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    t.identity_changes.c.seq,
                    t.identity_changes.c.identifier_key,
                    t.identity_changes.c.profile_id,
                )
                .where(t.identity_changes.c.seq > seq)
                .order_by(t.identity_changes.c.seq)
                .limit(limit)
            )
            return [(int(s), k, p) for s, k, p in rows]

    def last_change_seq(self) -> int:
        """Sequence number of the newest identity change (0 when none)."""
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(t.identity_changes.c.seq), 0))).scalar_one())

    def unmerge(self, profile_id: str, identifier: str, reason: str = "manual unmerge") -> str:
        """Detach IDENTIFIER from its profile into a new profile; events it anchors follow.

        Links between the identifier and the identifiers that stay are severed, so the same evidence does
        not merge them again; new evidence seen later can.
        """
        with self.engine.begin() as conn:
            owner = conn.execute(
                sa.select(t.identifiers.c.profile_id).where(t.identifiers.c.key == identifier)
            ).scalar_one_or_none()
            if owner is None:
                raise UnknownIdentifier(f"no identifier {identifier!r} is known")
            if owner != profile_id:
                raise UnknownIdentifier(f"identifier {identifier!r} belongs to profile {owner}, not {profile_id}")
            return self._detach(conn, profile_id, [identifier], reason)

    def undo_merge(self, merge_id: str, reason: str = "merge undone") -> str:
        """Detach the identifiers that merge MERGE_ID brought in (those still together) into a new profile."""
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(t.identity_merges).where(t.identity_merges.c.id == merge_id)).first()
            if row is None or row.kind not in ("merge", "match"):
                raise UnknownIdentifier(f"no merge {merge_id!r} to undo")
            moved = json.loads(row.identifiers)
            owners = dict(
                conn.execute(
                    sa.select(t.identifiers.c.key, t.identifiers.c.profile_id).where(t.identifiers.c.key.in_(moved))
                ).all()
            )
            if not owners:
                raise UnknownIdentifier(f"the identifiers of merge {merge_id} are no longer known")
            profile_id = Counter(owners.values()).most_common(1)[0][0]
            keys = sorted(k for k, p in owners.items() if p == profile_id)
            return self._detach(conn, profile_id, keys, reason)

    def _detach(self, conn: Connection, profile_id: str, keys: list[str], reason: str) -> str:
        """Move KEYS off PROFILE_ID into a new profile and sever their links to the identifiers that stay."""
        batch = _Batch(conn, self.rules, utcnow())
        moving = set(keys)
        staying = [
            k
            for (k,) in conn.execute(sa.select(t.identifiers.c.key).where(t.identifiers.c.profile_id == profile_id))
            if k not in moving
        ]
        if not staying:
            raise IdentityRuleError(f"{', '.join(keys)} would leave profile {profile_id} without identifiers")
        links = conn.execute(
            sa.select(t.identity_links.c.link_key, t.identity_links.c.identifiers)
            .join(t.identity_link_members, t.identity_link_members.c.link_key == t.identity_links.c.link_key)
            .where(t.identity_link_members.c.identifier_key.in_(keys))
        ).all()
        stay = set(staying)
        severed = sorted({lk for lk, ids in links if stay.intersection(json.loads(ids))})
        if severed:
            conn.execute(t.identity_links.update().where(t.identity_links.c.link_key.in_(severed)).values(severed=True))
        for lk in severed:
            self._known_links.pop(lk, None)
        new_pid = new_id()
        conn.execute(t.profiles.insert().values(id=new_pid, created_at=batch.now, conflicted=False))
        for key in keys:
            batch.owner[key] = profile_id
        self._move(batch, keys, new_pid)
        conn.execute(
            t.identity_merges.insert().values(
                id=new_id(),
                at=batch.now,
                kind="unmerge",
                from_profile=profile_id,
                into_profile=new_pid,
                identifiers=json.dumps(sorted(keys)),
                message_id=None,
                source_id=None,
                reason=reason,
            )
        )
        conn.execute(
            t.identity_conflicts.update()
            .where(
                t.identity_conflicts.c.profile_ids.contains(profile_id),
                t.identity_conflicts.c.status == "open",
            )
            .values(status="resolved")
        )
        return new_pid


class IdentityRuleError(Exception):
    """An identity operation that the rules forbid."""


class UnknownIdentifier(IdentityRuleError):
    """The identifier is not in the graph (or not on the profile named)."""
