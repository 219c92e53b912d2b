"""Probabilistic identity matching: profiles that share no identifier but are one person (by name, address,
date of birth, phone, email traits) are scored with Splink; sure pairs merge through the identity graph's write
path, borderline pairs wait in a review queue, later runs match only new records against the trained model."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from accord.identity import tables as t
from accord.identity.graph import IdentityGraph, ProfileMerge
from accord.identity.match_guard import contested
from accord.identity.match_records import RECORD_COLUMNS, RECORD_FIELDS
from accord.identity.normalize import split_key
from accord.identity.splink_model import MatchModel, ScoredPair, is_current
from accord.storage import new_id, utcnow
from accord.storage.events import EventStore

# Trait read for each record field (identify traits; the CRM importer maps birth_date to Segment's birthday).
TRAITS: dict[str, str] = {field: field for field in RECORD_FIELDS} | {"birth_date": "birthday"}
_CHUNK = 500
_MERGE_CHUNK = 5000  # merges per graph transaction (fewer, larger transactions at scale)
Progress = Callable[[str], None]


class MatchError(Exception):
    """Matching cannot run (bad thresholds, too little data to train a model)."""


class ReviewNotFound(Exception):
    """No review with that id."""


class ReviewClosed(Exception):
    """The review was decided already, or its merge is refused by the identity rules."""


@dataclass(frozen=True)
class MatchOptions:
    """Thresholds on Splink's match probability; FULL retrains and rescores everything."""

    # chosen on a held-out demo (bench/identity_match.py tune, docs/benchmarks.md): the highest threshold whose F1
    # is within 0.005 of the best there. Contested pairs go to review whatever their score.
    merge_above: float = 0.5
    review_above: float = 0.1
    full: bool = False

    def check(self) -> None:
        """Raise MatchError unless 0 < review_above <= merge_above <= 1."""
        if not 0.0 < self.review_above <= self.merge_above <= 1.0:
            raise MatchError(
                f"thresholds must satisfy 0 < review-above <= merge-above <= 1 "
                f"(got review-above {self.review_above}, merge-above {self.merge_above})"
            )


@dataclass(frozen=True)
class MatchReport:
    """What one run did."""

    run_id: str
    mode: str
    records: int
    new_records: int
    pairs: int
    merged: int
    queued: int
    refused: int
    skipped_decided: int
    seconds: float
    phases: dict[str, float] = field(default_factory=dict)
    contested: int = 0  # pairs above merge_above sent to review because a record fits two others

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)


# ---------------------------------------------------------------------------------------------- records
def _trait(name: str) -> str:
    return f"json_extract_string(raw, '$.traits.{name}')"


def records_sql() -> str:
    """One record per profile: the newest value of each trait over its identify events, and its newest seq."""
    columns = ",\n    ".join(
        f"arg_max({_trait(trait)}, (timestamp, event_id)) FILTER (WHERE {_trait(trait)} IS NOT NULL) AS {field}"
        for field, trait in TRAITS.items()
    )
    # the sources whose identify events carried a record id (customer_id): two records of one source system
    # are rarely one person, which the model learns like any other comparison
    sources = (
        "string_agg(DISTINCT source_id, ',' ORDER BY source_id) FILTER "
        "(WHERE len(list_filter(identifiers, lambda k: starts_with(k, 'customer_id:'))) > 0) AS record_sources"
    )
    return (
        f"SELECT profile_id AS unique_id,\n    {columns},\n    {sources},\n    max(journal_seq) AS seq\n"
        "FROM events WHERE type = 'identify' AND profile_id IS NOT NULL GROUP BY profile_id"
    )


def load_records(events: EventStore, after_seq: int = 0) -> tuple[pa.Table, list[str], int]:
    """The match records of all profiles, the ids of those with identify events after AFTER_SEQ, the newest seq."""
    rows = events.query(records_sql())
    newest = int(events.query("SELECT coalesce(max(journal_seq), 0) FROM events")[0][0])
    names = ("unique_id", *RECORD_COLUMNS)
    table = pa.table({name: pa.array([row[i] for row in rows], pa.string()) for i, name in enumerate(names)})
    new_ids = [row[0] for row in rows if after_seq and int(row[-1]) > after_seq]
    return table, new_ids, newest


# ---------------------------------------------------------------------------------------------- runs
def last_run(engine: sa.Engine) -> dict[str, Any] | None:
    """The newest match run (with its model), or None."""
    r = t.identity_match_runs
    with engine.connect() as conn:
        row = conn.execute(sa.select(r).order_by(r.c.at.desc(), r.c.id.desc()).limit(1)).first()
    return dict(row._mapping) if row is not None else None


def pair_key(identifier_a: str, identifier_b: str) -> str:
    """Stable key of an unordered pair of identifiers."""
    return hashlib.sha1("\n".join(sorted((identifier_a, identifier_b))).encode()).hexdigest()


def _anchors(conn: sa.Connection, graph: IdentityGraph, profile_ids: Iterable[str]) -> dict[str, str]:
    """Each profile's strongest identifier (the one a merge is recorded by)."""
    best: dict[str, tuple[int, str]] = {}
    ids = sorted(set(profile_ids))
    for i in range(0, len(ids), _CHUNK):
        rows = conn.execute(
            sa.select(t.identifiers.c.profile_id, t.identifiers.c.key).where(
                t.identifiers.c.profile_id.in_(ids[i : i + _CHUNK])
            )
        )
        for pid, key in rows:
            rank = (graph.rules.rank(split_key(key)[0]), key)
            if pid not in best or rank < best[pid]:
                best[pid] = rank
    return {pid: key for pid, (_rank, key) in best.items()}


def _decided(conn: sa.Connection, keys: Sequence[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for i in range(0, len(keys), _CHUNK):
        rows = conn.execute(
            sa.select(t.identity_reviews.c.pair_key, t.identity_reviews.c.status).where(
                t.identity_reviews.c.pair_key.in_(keys[i : i + _CHUNK])
            )
        )
        found.update({k: s for k, s in rows})
    return found


def _reason(pair: ScoredPair, run_id: str) -> str:
    agreeing = ", ".join(pair.agreeing) or "none"
    return f"probabilistic match {pair.probability:.6f} (run {run_id}); fields that agreed: {agreeing}"


def run_match(
    graph: IdentityGraph, events: EventStore, options: MatchOptions, progress: Progress | None = None
) -> MatchReport:
    """Score profiles, merge pairs at or above merge_above, queue pairs at or above review_above.

    The first run (or --full) trains a model by expectation maximisation and scores all pairs its blocking
    rules allow; later runs reuse the stored model and score only profiles with identify events newer than
    the last run against all profiles. The caller syncs the event store afterwards (Processor.sync_identity).
    """
    options.check()
    say = progress or (lambda _message: None)
    started = time.perf_counter()
    previous = None if options.full else last_run(graph.engine)
    if previous is not None and not is_current(json.loads(previous["model"])):
        previous = None  # a model of an older version: train anew
    mode = "incremental" if previous is not None else "full"
    run_id = new_id()
    phases: dict[str, float] = {}
    mark = time.perf_counter()

    def phase(name: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        phases[name] = round(now - mark, 3)
        mark = now

    say("reading profiles' traits")
    records, new_ids, newest = load_records(events, int(previous["event_seq"]) if previous else 0)
    phase("read")
    if previous is not None and not new_ids:
        model_json = previous["model"]
        pairs: list[ScoredPair] = []
        size = records.num_rows
    else:
        if records.num_rows < 2:
            raise MatchError("fewer than two profiles have name, address or birth date traits: nothing to match")
        model = MatchModel(records, json.loads(previous["model"]) if previous else None, new_ids)
        try:
            size = model.size
            phase("prepare")
            if not model.trained:
                say(f"training the model on {size} records (expectation maximisation)")
                model.train()
                phase("train")
            say("scoring candidate pairs")
            pairs = model.score(options.review_above)
            phase("score")
            model_json = json.dumps(model.model())
        except Exception as exc:  # Splink raises plain exceptions on degenerate data
            module = type(exc).__module__
            if "splink" not in module and "duckdb" not in module and not isinstance(exc, ArithmeticError | ValueError):
                raise
            raise MatchError(f"the match model could not be trained or applied: {exc}") from exc
        finally:
            model.close()
    merged = queued = refused = decided = contested_count = 0
    pairs.sort(key=lambda p: (-p.probability, p.left, p.right))
    with graph.engine.connect() as conn:
        anchors = _anchors(conn, graph, (pid for p in pairs for pid in (p.left, p.right)))
        keyed = [
            (pair_key(anchors[p.left], anchors[p.right]), p) for p in pairs if p.left in anchors and p.right in anchors
        ]
        status = _decided(conn, [k for k, _ in keyed])
    to_merge: list[tuple[str, ScoredPair]] = []
    to_review: list[tuple[str, ScoredPair]] = []
    disputed = contested(p for key, p in keyed if key not in status)
    for key, pair in keyed:
        if key in status:
            decided += 1
        elif pair.probability >= options.merge_above and (pair.left, pair.right) not in disputed:
            to_merge.append((key, pair))
        else:
            contested_count += int(pair.probability >= options.merge_above)
            to_review.append((key, pair))
    say(f"merging {len(to_merge)} pairs, queueing {len(to_review)} for review")
    for i in range(0, len(to_merge), _MERGE_CHUNK):
        chunk = to_merge[i : i + _MERGE_CHUNK]
        results = graph.merge_profiles(
            [
                ProfileMerge(anchors[p.left], anchors[p.right], _reason(p, run_id), f"match:{run_id}:{i + n}")
                for n, (_key, p) in enumerate(chunk)
            ]
        )
        merged += sum(1 for r in results if r is not None)
        refused += sum(1 for r in results if r is None)
    phase("merge")
    shown = _shown_records(records, {pid for _k, p in to_review for pid in (p.left, p.right)})
    now = utcnow()
    seconds = round(time.perf_counter() - started, 3)
    with graph.engine.begin() as conn:
        seen: set[str] = set()
        rows = []
        for key, p in to_review:
            if key in seen:
                continue
            seen.add(key)
            rows.append(
                {
                    "id": new_id(),
                    "created_at": now,
                    "run_id": run_id,
                    "pair_key": key,
                    "identifier_a": anchors[p.left],
                    "identifier_b": anchors[p.right],
                    "profile_a": p.left,
                    "profile_b": p.right,
                    "score": p.probability,
                    "agreeing": json.dumps(list(p.agreeing)),
                    "records": json.dumps([shown.get(p.left, {}), shown.get(p.right, {})]),
                    "status": "open",
                }
            )
        for i in range(0, len(rows), _CHUNK):
            conn.execute(t.identity_reviews.insert(), rows[i : i + _CHUNK])
        queued = len(rows)
        conn.execute(
            t.identity_match_runs.insert().values(
                id=run_id,
                at=now,
                mode=mode,
                event_seq=newest,
                records=size,
                pairs=len(pairs),
                merged=merged,
                queued=queued,
                refused=refused,
                merge_above=options.merge_above,
                review_above=options.review_above,
                seconds=seconds,
                model=model_json,
            )
        )
    phase("queue")
    return MatchReport(
        run_id,
        mode,
        size,
        len(new_ids),
        len(pairs),
        merged,
        queued,
        refused,
        decided,
        round(time.perf_counter() - started, 3),
        phases,
        contested_count,
    )


def _shown_records(records: pa.Table, profile_ids: set[str]) -> dict[str, dict[str, Any]]:
    """The traits of the profiles in review, as the reviewer sees them."""
    if not profile_ids:
        return {}
    ids = records.column("unique_id").to_pylist()
    wanted = [i for i, pid in enumerate(ids) if pid in profile_ids]
    subset = records.take(pa.array(wanted, pa.int64())).to_pylist()
    return {row.pop("unique_id"): {k: v for k, v in row.items() if v is not None} for row in subset}


# ---------------------------------------------------------------------------------------------- reviews
def _review_dict(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "created_at": row.created_at,
        "run_id": row.run_id,
        "identifier_a": row.identifier_a,
        "identifier_b": row.identifier_b,
        "profile_a": row.profile_a,
        "profile_b": row.profile_b,
        "score": row.score,
        "agreeing": json.loads(row.agreeing),
        "records": json.loads(row.records),
        "status": row.status,
        "decided_at": row.decided_at,
        "note": row.note,
    }


def reviews(engine: sa.Engine, status: str | None = "open", limit: int = 100) -> list[dict[str, Any]]:
    """Pairs waiting for (or given) a decision, most likely first."""
    r = t.identity_reviews
    query = sa.select(r).order_by(r.c.score.desc(), r.c.id).limit(limit)
    if status:
        query = query.where(r.c.status == status)
    with engine.connect() as conn:
        return [_review_dict(row) for row in conn.execute(query)]


def decide_review(graph: IdentityGraph, review_id: str, accept: bool, note: str | None = None) -> dict[str, Any]:
    """Accept (merge the two profiles through the graph, audited and reversible) or reject (keep them apart,
    and never queue or merge this pair automatically again)."""
    r = t.identity_reviews
    with graph.engine.connect() as conn:
        row = conn.execute(sa.select(r).where(r.c.id == review_id)).first()
    if row is None:
        raise ReviewNotFound(f"no review {review_id!r}")
    if row.status != "open":
        raise ReviewClosed(f"review {review_id} was {row.status} already")
    if accept:
        merge = ProfileMerge(
            row.identifier_a,
            row.identifier_b,
            f"review {review_id} accepted (probabilistic match {row.score:.6f})" + (f": {note}" if note else ""),
            f"review:{review_id}",
        )
        if graph.merge_profiles([merge])[0] is None:
            raise ReviewClosed(
                f"the identity rules refuse to merge {row.identifier_a} and {row.identifier_b} "
                "(two user ids, a limit, or they were unmerged before)"
            )
    with graph.engine.begin() as conn:
        conn.execute(
            r.update()
            .where(r.c.id == review_id)
            .values(status="accepted" if accept else "rejected", decided_at=utcnow(), note=note)
        )
        row = conn.execute(sa.select(r).where(r.c.id == review_id)).one()
    return _review_dict(row)
