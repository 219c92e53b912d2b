"""The segments domain's public functions: apply, preview, evaluate (full, incremental, timed), read, export.

One write path: every membership change, its row in the change feed, the size history and the `Segment Entered`
/ `Segment Exited` events on the profile timeline commit in one state-store transaction.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from accord.collect.emit import emit
from accord.collect.journal import Journal
from accord.segments.compile import BUILTINS, RfmThresholds, Vocabulary, declared_kind
from accord.segments.engines import QueryEngine
from accord.segments.rules import (
    RuleError,
    SegmentDefinition,
    TraitDefinition,
    has_relative_time,
    parse_segment,
    parse_trait,
)
from accord.segments.tables import segment_changes, segment_definitions, segment_members, segment_sizes, segment_state
from accord.storage import utcnow

log = logging.getLogger(__name__)

SOURCE_NAME = "accord-segments"
CHUNK = 900  # profile ids per state-store statement
SCAN_CHUNK = 250_000  # profile ids per event-log query: each query scans the log once, so few and large
# profile ids per subset query (their events are held in memory while it runs): ~1M events at 20 per profile
SUBSET_CHUNK = 50_000


class SegmentNotFound(LookupError):
    """No segment (or trait) of that name."""


class SegmentInUse(ValueError):
    """A segment that other segments refer to cannot be deleted."""


def _refers_to(cond: Any, name: str) -> bool:
    from accord.segments.rules import Group, SegmentCondition

    if isinstance(cond, Group):
        return any(_refers_to(c, name) for c in cond.items)
    return isinstance(cond, SegmentCondition) and cond.name == name


@dataclass(frozen=True)
class MembershipChange:
    """One entry or exit, in feed order."""

    seq: int
    segment: str
    profile_id: str
    change: str  # entered | exited
    at: datetime


@dataclass(frozen=True)
class EvaluationResult:
    """What an evaluation changed."""

    segment: str
    size: int
    entered: int
    exited: int


# ---- definitions --------------------------------------------------------------------------------------------


def vocabulary(state: sa.Engine) -> Vocabulary:
    """Every saved segment and declared trait."""
    vocab = Vocabulary()
    with state.connect() as conn:
        for kind, text in conn.execute(sa.select(segment_definitions.c.kind, segment_definitions.c.definition)):
            data = json.loads(text)
            if kind == "segment":
                seg = parse_segment(data)
                vocab.segments[seg.name] = seg
            else:
                trait = parse_trait(data)
                vocab.traits[trait.name] = trait
    return vocab


def _save_definition(conn: sa.Connection, kind: str, name: str, description: str, data: dict[str, Any]) -> bool:
    now = utcnow()
    text = json.dumps(data, sort_keys=True)
    t = segment_definitions
    row = conn.execute(sa.select(t.c.definition).where(t.c.name == name, t.c.kind == kind)).first()
    if row is None:
        conn.execute(
            t.insert().values(
                name=name, kind=kind, description=description, definition=text, created_at=now, updated_at=now
            )
        )
        return True
    if row.definition != text:
        conn.execute(
            t.update()
            .where(t.c.name == name, t.c.kind == kind)
            .values(description=description, definition=text, updated_at=now)
        )
        return True
    return False


def apply_trait(state: sa.Engine, definition: TraitDefinition) -> dict[str, Any]:
    """Save a declared computed trait (it may not shadow a built-in)."""
    if definition.name in BUILTINS:
        raise RuleError("name", f"{definition.name!r} is a built-in computed trait; choose another name")
    vocab = vocabulary(state)
    vocab.traits[definition.name] = definition
    vocab.compiler("duckdb", utcnow()).traits_query([definition.name])  # refuses unknown names early
    with state.begin() as conn:
        changed = _save_definition(conn, "trait", definition.name, definition.description, definition.source)
    return {"name": definition.name, "changed": changed, "kind": declared_kind(definition)}


def list_traits(state: sa.Engine) -> list[dict[str, Any]]:
    """Built-in and declared computed traits."""
    out = [{"name": n, "kind": b.kind, "builtin": True, "description": b.description} for n, b in BUILTINS.items()]
    for name, trait in sorted(vocabulary(state).traits.items()):
        out.append(
            {
                "name": name,
                "kind": declared_kind(trait),
                "builtin": False,
                "description": trait.description,
                "definition": trait.source,
            }
        )
    return out


def get_segment(state: sa.Engine, name: str) -> SegmentDefinition:
    """A saved segment."""
    seg = vocabulary(state).segments.get(name)
    if seg is None:
        raise SegmentNotFound(f"there is no segment named {name!r}")
    return seg


# ---- RFM cut points ----------------------------------------------------------------------------------------


def _get_state(conn: sa.Connection, key: str) -> Any:
    value = conn.execute(sa.select(segment_state.c.value).where(segment_state.c.key == key)).scalar()
    return json.loads(value) if value is not None else None


def _set_state(conn: sa.Connection, key: str, value: Any) -> None:
    text = json.dumps(value)
    updated = conn.execute(
        segment_state.update().where(segment_state.c.key == key).values(value=text, updated_at=utcnow())
    )
    if updated.rowcount == 0:
        conn.execute(segment_state.insert().values(key=key, value=text, updated_at=utcnow()))


def _cuts(values: list[float]) -> tuple[float, ...]:
    if len(values) < 5:
        return ()
    return tuple(float(x) for x in statistics.quantiles(values, n=5, method="inclusive"))


def refresh_rfm(state: sa.Engine, engine: QueryEngine, now: datetime | None = None) -> RfmThresholds:
    """Recompute the RFM quintile cut points over every buyer and keep them (scores use them until the next one)."""
    now = now or utcnow()
    query = (
        Vocabulary()
        .compiler(engine.dialect, now, None, engine.rollups)
        .traits_query(["days_since_last_purchase", "orders", "lifetime_revenue"], restrict=False)
    )
    rows = [r for r in engine.rows(query) if r[2] and r[2] > 0]
    rfm = RfmThresholds(
        _cuts([float(r[1]) for r in rows]), _cuts([float(r[2]) for r in rows]), _cuts([float(r[3]) for r in rows])
    )
    with state.begin() as conn:
        _set_state(conn, "rfm", {"recency": rfm.recency, "frequency": rfm.frequency, "monetary": rfm.monetary})
    return rfm


def rfm_thresholds(state: sa.Engine) -> RfmThresholds | None:
    """The kept RFM cut points, if computed."""
    with state.connect() as conn:
        data = _get_state(conn, "rfm")
    if not data:
        return None
    return RfmThresholds(tuple(data["recency"]), tuple(data["frequency"]), tuple(data["monetary"]))


# ---- evaluation ---------------------------------------------------------------------------------------------


def _chunks(items: Sequence[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield list(items[i : i + size])


def compute_members(
    state: sa.Engine,
    engine: QueryEngine,
    definition: SegmentDefinition,
    now: datetime,
    profile_ids: Sequence[str] | None = None,
    vocab: Vocabulary | None = None,
) -> set[str]:
    """Members by the rule (among PROFILE_IDS when given), without saving anything."""
    vocab = vocab or vocabulary(state)
    rfm = rfm_thresholds(state)
    if profile_ids is None:
        engine.flush()  # a full evaluation reads the written events only
        query = vocab.compiler(engine.dialect, now, rfm, engine.rollups).members_query(definition.rule)
        return {str(r[0]) for r in engine.rows(query)}
    members: set[str] = set()
    compiler = vocab.compiler(engine.dialect, now, rfm, engine.rollups, engine.subset)
    query = compiler.members_query(definition.rule, restrict=True)
    for chunk in _chunks(sorted(set(profile_ids)), SUBSET_CHUNK if engine.subset else SCAN_CHUNK):
        query.params["ids"] = chunk
        asked = set(chunk)  # a subset query may return a profile whose key collides with one asked for
        members.update(p for p in (str(r[0]) for r in engine.rows(query)) if p in asked)
    return members


def compute_all_members(
    state: sa.Engine,
    engine: QueryEngine,
    vocab: Vocabulary,
    names: list[str],
    now: datetime,
    profile_ids: Sequence[str] | None = None,
    anchors: dict[str, str] | None = None,
) -> dict[str, set[str]]:
    """Members of several segments from ONE scan of the event log (among PROFILE_IDS when given).

    ANCHORS, when given, receives each returned profile's newest anchor identifier (to address timeline events).
    """
    rules = [vocab.segments[n].rule for n in names]
    restrict = profile_ids is not None
    compiler = vocab.compiler(engine.dialect, now, rfm_thresholds(state), engine.rollups, restrict and engine.subset)
    query = compiler.memberships_query(rules, restrict)
    out: dict[str, set[str]] = {n: set() for n in names}
    size = SUBSET_CHUNK if engine.subset else SCAN_CHUNK
    chunks = [None] if profile_ids is None else list(_chunks(sorted(set(profile_ids)), size))
    if profile_ids is None:
        engine.flush()  # a full evaluation reads the written events only
    for chunk in chunks:
        asked = None
        if chunk is not None:
            query.params["ids"] = chunk
            asked = set(chunk)  # a subset query may return a profile whose key collides with one asked for
        for row in engine.rows(query):
            if asked is not None and str(row[0]) not in asked:
                continue
            if anchors is not None and row[1] is not None:
                anchors[str(row[0])] = str(row[1])
            for name, flag in zip(names, row[2:], strict=True):
                if flag:
                    out[name].add(str(row[0]))
    return out


def preview(
    state: sa.Engine, engine: QueryEngine, definition: SegmentDefinition, now: datetime | None = None, sample: int = 10
) -> dict[str, Any]:
    """Size and a sample of members, nothing saved."""
    vocab = vocabulary(state)
    vocab.segments[definition.name] = definition
    members = sorted(compute_members(state, engine, definition, now or utcnow(), vocab=vocab))
    return {"name": definition.name, "count": len(members), "sample": members[:sample]}


def _current(conn: sa.Connection, segment: str, profile_ids: Sequence[str] | None) -> set[str]:
    m = segment_members
    if profile_ids is None:
        return {r[0] for r in conn.execute(sa.select(m.c.profile_id).where(m.c.segment == segment))}
    found: set[str] = set()
    for chunk in _chunks(sorted(set(profile_ids)), CHUNK):
        rows = conn.execute(sa.select(m.c.profile_id).where(m.c.segment == segment, m.c.profile_id.in_(chunk)))
        found.update(r[0] for r in rows)
    return found


def _anchors(engine: QueryEngine, profile_ids: Sequence[str]) -> dict[str, str]:
    """One identifier ('type:value') per profile, to address its timeline events."""
    from accord.segments.compile import ASKED_ANCHORS, Compiled

    out: dict[str, str] = {}
    if engine.dialect != "duckdb":
        return out
    if engine.rollups:
        sql = (
            ASKED_ANCHORS
            if engine.subset
            else (
                "SELECT profile_id, arg_max(anchor, (last_at, last_event_id)) FROM event_anchors "
                "WHERE profile_id IN (SELECT unnest($ids)) GROUP BY profile_id"
            )
        )
    else:
        sql = (
            "SELECT profile_id, arg_max(anchor, (timestamp, event_id)) FROM events "
            "WHERE profile_id IN (SELECT unnest($ids)) AND anchor IS NOT NULL GROUP BY profile_id"
        )
    for chunk in _chunks(sorted(set(profile_ids)), SCAN_CHUNK):
        rows = engine.rows(
            Compiled(
                sql,
                {"ids": chunk},
                "duckdb",
            )
        )
        out.update((str(p), str(a)) for p, a in rows)
    return out


def _timeline_message(segment: str, change: str, anchor: str, at: datetime) -> dict[str, Any]:
    kind, _, value = anchor.partition(":")
    message: dict[str, Any] = {
        "type": "track",
        "event": "Segment Entered" if change == "entered" else "Segment Exited",
        "properties": {"segment": segment},
        "timestamp": at.isoformat(),
    }
    if kind == "user_id":
        message["userId"] = value
    elif kind == "anonymous_id":
        message["anonymousId"] = value
    else:
        message["context"] = {"externalIds": [{"id": value, "type": kind, "collection": "users", "encoding": "none"}]}
    return message


def _record(
    state: sa.Engine,
    engine: QueryEngine,
    journal: Journal | None,
    segment: str,
    entered: set[str],
    exited: set[str],
    now: datetime,
    full: bool,
    known_anchors: dict[str, str] | None = None,
) -> int:
    """Write membership changes, the feed, the size and the timeline events in one transaction; returns size."""
    anchors: dict[str, str] = {}
    if journal is not None and (entered or exited):
        known = known_anchors or {}
        anchors = {p: known[p] for p in entered | exited if p in known}
        missing = sorted((entered | exited) - set(anchors))
        if missing:
            anchors.update(_anchors(engine, missing))
    m = segment_members
    with state.begin() as conn:
        for chunk in _chunks(sorted(exited), CHUNK):
            conn.execute(m.delete().where(m.c.segment == segment, m.c.profile_id.in_(chunk)))
        if entered:
            conn.execute(
                m.insert(), [{"segment": segment, "profile_id": p, "entered_at": now} for p in sorted(entered)]
            )
        changes: list[dict[str, Any]] = [
            {"segment": segment, "profile_id": p, "change": "entered", "at": now} for p in sorted(entered)
        ]
        changes += [{"segment": segment, "profile_id": p, "change": "exited", "at": now} for p in sorted(exited)]
        if changes:
            conn.execute(segment_changes.insert(), changes)
        size = int(conn.execute(sa.select(sa.func.count()).select_from(m).where(m.c.segment == segment)).scalar_one())
        if changes or full:
            conn.execute(segment_sizes.insert().values(segment=segment, at=now, size=size))
        if journal is not None:
            messages = [
                _timeline_message(segment, c["change"], anchors[c["profile_id"]], now)
                for c in changes
                if c["profile_id"] in anchors  # a profile merged away has no events left: feed only
            ]
            for i in range(0, len(messages), 500):
                emit(conn, journal, SOURCE_NAME, "other", messages[i : i + 500], received_at=now)
    return size


def evaluate(
    state: sa.Engine,
    engine: QueryEngine,
    journal: Journal | None,
    segment: str,
    now: datetime | None = None,
    profile_ids: Sequence[str] | None = None,
    vocab: Vocabulary | None = None,
    computed_members: set[str] | None = None,
    anchors: dict[str, str] | None = None,
) -> EvaluationResult:
    """Evaluate one saved segment: fully, or only for PROFILE_IDS (incremental); store and emit the changes."""
    now = now or utcnow()
    vocab = vocab or vocabulary(state)
    definition = vocab.segments.get(segment)
    if definition is None:
        raise SegmentNotFound(f"there is no segment named {segment!r}")
    members = computed_members
    if members is None:
        members = compute_members(state, engine, definition, now, profile_ids, vocab)
    with state.connect() as conn:
        current = _current(conn, segment, profile_ids)
    entered, exited = members - current, current - members
    size = _record(state, engine, journal, segment, entered, exited, now, profile_ids is None, anchors)
    return EvaluationResult(segment, size, len(entered), len(exited))


def apply_segment(
    state: sa.Engine, engine: QueryEngine, journal: Journal | None, definition: SegmentDefinition, now: datetime | None
) -> dict[str, Any]:
    """Save (create or replace) a segment and evaluate it fully."""
    now = now or utcnow()
    vocab = vocabulary(state)
    vocab.segments[definition.name] = definition
    vocab.compiler("duckdb", now).members_query(definition.rule)  # unknown names and cycles refused before saving
    with state.begin() as conn:
        changed = _save_definition(conn, "segment", definition.name, definition.description, definition.source)
    result = evaluate(state, engine, journal, definition.name, now, vocab=vocab)
    return {"name": definition.name, "changed": changed, **result.__dict__}


def evaluate_all(
    state: sa.Engine,
    engine: QueryEngine,
    journal: Journal | None,
    now: datetime | None = None,
    profile_ids: Sequence[str] | None = None,
    time_driven_only: bool = False,
) -> list[EvaluationResult]:
    """Evaluate every saved segment (for PROFILE_IDS only when given; only those that time alone can change)."""
    now = now or utcnow()
    vocab = vocabulary(state)
    results = []
    names = [n for n, d in sorted(vocab.segments.items()) if not time_driven_only or has_relative_time(d.rule)]
    anchors: dict[str, str] = {}
    try:
        computed: dict[str, set[str]] = compute_all_members(state, engine, vocab, names, now, profile_ids, anchors)
    except RuleError:  # one segment cannot compile: evaluate them one by one so that the others still do
        computed = {}
    for name in names:
        try:
            results.append(evaluate(state, engine, journal, name, now, profile_ids, vocab, computed.get(name), anchors))
        except RuleError:  # e.g. a declared trait it uses was removed: the other segments still evaluate
            log.exception("segment %s cannot be evaluated", name)
    return results


def delete_segment(state: sa.Engine, name: str) -> None:
    """Remove a segment: its members exit (recorded in the feed, no timeline events)."""
    users = sorted(n for n, d in vocabulary(state).segments.items() if n != name and _refers_to(d.rule, name))
    if users:
        raise SegmentInUse(f"segment {name!r} is used by {', '.join(users)}; change or delete those first")
    now = utcnow()
    with state.begin() as conn:
        members = _current(conn, name, None)
        deleted = conn.execute(
            segment_definitions.delete().where(
                segment_definitions.c.name == name, segment_definitions.c.kind == "segment"
            )
        )
        if deleted.rowcount == 0:
            raise SegmentNotFound(f"there is no segment named {name!r}")
        conn.execute(segment_members.delete().where(segment_members.c.segment == name))
        if members:
            conn.execute(
                segment_changes.insert(),
                [{"segment": name, "profile_id": p, "change": "exited", "at": now} for p in sorted(members)],
            )


# ---- reads --------------------------------------------------------------------------------------------------


def member_ids(state: sa.Engine, segment: str) -> list[str]:
    """Current members of a segment (by name), sorted."""
    m = segment_members
    with state.connect() as conn:
        rows = conn.execute(sa.select(m.c.profile_id).where(m.c.segment == segment).order_by(m.c.profile_id))
        return [r[0] for r in rows]


def members(state: sa.Engine, segment: str, limit: int | None = None) -> list[dict[str, Any]]:
    """Current members with the time they entered."""
    m = segment_members
    query = sa.select(m.c.profile_id, m.c.entered_at).where(m.c.segment == segment).order_by(m.c.profile_id)
    if limit:
        query = query.limit(limit)
    with state.connect() as conn:
        return [{"profile_id": p, "entered_at": at} for p, at in conn.execute(query)]


def membership_changes_since(state: sa.Engine, after_seq: int, limit: int) -> list[MembershipChange]:
    """Entries and exits after AFTER_SEQ, oldest first (the feed journeys subscribe to)."""
    c = segment_changes
    with state.connect() as conn:
        rows = conn.execute(sa.select(c).where(c.c.seq > after_seq).order_by(c.c.seq).limit(limit))
        return [MembershipChange(int(r.seq), r.segment, r.profile_id, r.change, r.at) for r in rows]


def segments_of(state: sa.Engine, profile_id: str) -> list[str]:
    """Names of the segments a profile is in."""
    m = segment_members
    with state.connect() as conn:
        rows = conn.execute(sa.select(m.c.segment).where(m.c.profile_id == profile_id).order_by(m.c.segment))
        return [r[0] for r in rows]


def list_segments(state: sa.Engine) -> list[dict[str, Any]]:
    """Saved segments with their current size."""
    d, m = segment_definitions, segment_members
    with state.connect() as conn:
        sizes: dict[str, int] = dict(conn.execute(sa.select(m.c.segment, sa.func.count()).group_by(m.c.segment)).all())
        rows = conn.execute(
            sa.select(d.c.name, d.c.description, d.c.definition, d.c.updated_at)
            .where(d.c.kind == "segment")
            .order_by(d.c.name)
        )
        return [
            {
                "name": n,
                "description": desc,
                "size": int(sizes.get(n, 0)),
                "updated_at": at,
                "definition": json.loads(text),
            }
            for n, desc, text, at in rows
        ]


def size_history(state: sa.Engine, segment: str, limit: int = 1000) -> list[dict[str, Any]]:
    """Size of the segment over time, oldest first."""
    s = segment_sizes
    with state.connect() as conn:
        rows = conn.execute(
            sa.select(s.c.at, s.c.size).where(s.c.segment == segment).order_by(s.c.id.desc()).limit(limit)
        ).all()
    return [{"at": at, "size": int(size)} for at, size in reversed(rows)]


def computed_traits(
    state: sa.Engine, engine: QueryEngine, profile_ids: Sequence[str], now: datetime | None = None
) -> dict[str, dict[str, Any]]:
    """Every built-in and declared computed trait of the profiles, as of NOW."""
    vocab = vocabulary(state)
    names = [*BUILTINS, *sorted(vocab.traits)]
    query = vocab.compiler(engine.dialect, now or utcnow(), rfm_thresholds(state), engine.rollups).traits_query(names)
    out: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(sorted(set(profile_ids)), SCAN_CHUNK):
        query.params["ids"] = chunk
        for row in engine.rows(query):
            out[str(row[0])] = {n: _plain(v) for n, v in zip(names, row[1:], strict=True)}
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# ---- audience export ----------------------------------------------------------------------------------------


def sha256(text: str) -> str:
    """Hex SHA-256 of a normalised identifier."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def hashed_audience_csv(
    state: sa.Engine, segment: str, identifiers_of: Callable[[str], list[dict[str, Any]]]
) -> tuple[str, int]:
    """CSV `email_sha256,phone_sha256` (normalised: trimmed lower-case emails, E.164 phones) of the members.

    IDENTIFIERS_OF(profile_id) gives the identity graph's normalised identifiers of a profile.
    """
    if not any(s["name"] == segment for s in list_segments(state)):
        raise SegmentNotFound(f"there is no segment named {segment!r}")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["email_sha256", "phone_sha256"])
    rows = 0
    for pid in member_ids(state, segment):
        ids = identifiers_of(pid)
        emails = [i["value"].strip().lower() for i in ids if i["type"] == "email"]
        phones = [i["value"] for i in ids if i["type"] == "phone" and str(i["value"]).startswith("+")]
        for k in range(max(len(emails), len(phones))):
            email = sha256(emails[k]) if k < len(emails) else ""
            phone = sha256(phones[k]) if k < len(phones) else ""
            writer.writerow([email, phone])
            rows += 1
    return out.getvalue(), rows


def now_utc() -> datetime:
    """The evaluation instant."""
    return datetime.now(UTC)


def apply_examples(state: sa.Engine, engine: QueryEngine, journal: Journal | None) -> list[dict[str, Any]]:
    """Apply the demo retailer's example segments (RFM cut points first)."""
    from pathlib import Path

    from accord.segments.rules import parse_documents

    refresh_rfm(state, engine)
    text = (Path(__file__).parent / "examples" / "demo.yaml").read_text(encoding="utf-8")
    return [apply_segment(state, engine, journal, d, None) for d in parse_documents(text, "segment")]


def profile_additions(state: sa.Engine, engine: QueryEngine, profile_id: str) -> dict[str, Any]:
    """What segments add to a profile view: its computed traits (as of now) and the segments it is in."""
    traits = computed_traits(state, engine, [profile_id]).get(profile_id, {})
    return {"computed_traits": traits, "segments": segments_of(state, profile_id)}
