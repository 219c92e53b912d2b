"""The journeys domain's public functions: apply versions, start/pause/stop, trigger, feed events, stats."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from accord.journeys import tables as t
from accord.journeys.definition import Journey, load_journey, parse_journey
from accord.journeys.engine import Engine, JourneyEvent, SegmentChange
from accord.journeys.errors import JourneyError as JourneyError
from accord.storage import new_id, utcnow

EVENTS_CURSOR = "events"
STATUSES = ("draft", "active", "paused", "stopped")


def _latest(conn: sa.Connection, name: str) -> Any:
    return (
        conn.execute(sa.select(t.journeys).where(t.journeys.c.name == name).order_by(t.journeys.c.version.desc()))
        .mappings()
        .first()
    )


def apply(state: sa.Engine, text_or_data: str | dict[str, Any], activate: bool = False) -> dict[str, Any]:
    """Save a definition; a changed definition becomes a new version (running instances finish on theirs).

    A new version keeps the journey's status (an active journey stays active); ACTIVATE starts it too.
    """
    journey = load_journey(text_or_data) if isinstance(text_or_data, str) else parse_journey(text_or_data)
    canonical = json.dumps(journey.source, sort_keys=True, default=str)
    with state.begin() as conn:
        latest = _latest(conn, journey.name)
        if latest is not None and latest["definition"] == canonical:
            if activate and latest["status"] != "active":
                conn.execute(t.journeys.update().where(t.journeys.c.id == latest["id"]).values(status="active"))
            return _summary(conn, journey.name, changed=False)
        status = "active" if activate else (latest["status"] if latest is not None else "draft")
        conn.execute(
            t.journeys.insert().values(
                id=new_id(),
                name=journey.name,
                version=(latest["version"] + 1) if latest is not None else 1,
                definition=canonical,
                status=status,
                created_at=utcnow(),
            )
        )
        return _summary(conn, journey.name, changed=True)


def set_status(state: sa.Engine, name: str, status: str) -> dict[str, Any]:
    """Start (active), pause or stop a journey. Stopping ends its running instances."""
    if status not in STATUSES:
        raise JourneyError(f"unknown status {status!r}", code="invalid_status", status=422)
    with state.begin() as conn:
        latest = _latest(conn, name)
        if latest is None:
            raise JourneyError(f"no journey named {name!r}", code="journey_not_found", status=404)
        if latest["status"] == "stopped" and status != "stopped":
            raise JourneyError(
                f"journey {name!r} was stopped; apply it under a new name", code="journey_stopped", status=409
            )
        conn.execute(t.journeys.update().where(t.journeys.c.name == name).values(status=status))
        if status == "stopped":
            inst = t.journey_instances
            conn.execute(
                inst.update()
                .where(inst.c.journey_name == name, inst.c.state == "active")
                .values(state="exited", exit_reason="journey stopped", ended_at=utcnow(), step_id=None, due_at=None)
            )
        return _summary(conn, name, changed=False)


def list_journeys(state: sa.Engine) -> list[dict[str, Any]]:
    """Every journey with its latest version, status and instance counts."""
    with state.connect() as conn:
        names = conn.execute(sa.select(t.journeys.c.name).distinct().order_by(t.journeys.c.name)).scalars().all()
        return [_summary(conn, name, changed=False) for name in names]


def get(state: sa.Engine, name: str) -> dict[str, Any]:
    """One journey: summary and the latest definition."""
    with state.connect() as conn:
        latest = _latest(conn, name)
        if latest is None:
            raise JourneyError(f"no journey named {name!r}", code="journey_not_found", status=404)
        return {**_summary(conn, name, changed=False), "definition": json.loads(latest["definition"])}


def _summary(conn: sa.Connection, name: str, changed: bool) -> dict[str, Any]:
    latest = _latest(conn, name)
    inst = t.journey_instances
    counts: dict[str, int] = dict(
        conn.execute(
            sa.select(inst.c.state, sa.func.count()).where(inst.c.journey_name == name).group_by(inst.c.state)
        ).all()
    )
    return {
        "name": name,
        "version": latest["version"],
        "status": latest["status"],
        "changed": changed,
        "instances": {state: counts.get(state, 0) for state in ("active", "completed", "exited")},
    }


def trigger(
    engine: Engine, name: str, profile_ids: Sequence[str], properties: dict[str, Any] | None = None
) -> list[str]:
    """Enter profiles into an active journey through the API (entry rules apply); returns new instance ids."""
    with engine.state.begin() as conn:
        latest = _latest(conn, name)
        if latest is None:
            raise JourneyError(f"no journey named {name!r}", code="journey_not_found", status=404)
        if latest["status"] != "active":
            raise JourneyError(
                f"journey {name!r} is {latest['status']}, not active", code="journey_not_active", status=409
            )
        journey = engine.definition(conn, latest["id"])
        return engine.enter(conn, latest["id"], journey, profile_ids, properties)


def init_cursor(state: sa.Engine, journal_seq: int) -> None:
    """Start reading events after JOURNAL_SEQ unless a cursor exists (journeys do not replay history)."""
    with state.begin() as conn:
        if conn.execute(sa.select(t.journey_cursors.c.seq).where(t.journey_cursors.c.name == EVENTS_CURSOR)).first():
            return
        conn.execute(t.journey_cursors.insert().values(name=EVENTS_CURSOR, seq=journal_seq))


def skip_to(state: sa.Engine, journal_seq: int) -> None:
    """Move the journeys' event cursor forward to JOURNAL_SEQ (after a bulk history load: no replay)."""
    init_cursor(state, journal_seq)
    with state.begin() as conn:
        conn.execute(
            t.journey_cursors.update()
            .where(t.journey_cursors.c.name == EVENTS_CURSOR, t.journey_cursors.c.seq < journal_seq)
            .values(seq=journal_seq)
        )


LIBRARY = Path(__file__).parent / "library"


def library() -> dict[str, str]:
    """The ready-made journeys shipped with Accord: file stem -> YAML text."""
    return {path.stem: path.read_text(encoding="utf-8") for path in sorted(LIBRARY.glob("*.yaml"))}


def apply_library(state: sa.Engine, activate: bool = True) -> list[dict[str, Any]]:
    """Apply (and start) every ready-made journey."""
    return [apply(state, text, activate) for text in library().values()]


def feed_events(engine: Engine, read_events: Any, upto_seq: int) -> int:
    """Hand events loaded up to UPTO_SEQ to the engine, after the journeys' own cursor, atomically with it.

    READ_EVENTS(after, upto) returns JourneyEvents with journal seq in (after, upto]. Returns how many were fed.
    """
    fed = 0
    with engine.state.begin() as conn:
        row = conn.execute(sa.select(t.journey_cursors.c.seq).where(t.journey_cursors.c.name == EVENTS_CURSOR)).first()
        after = row[0] if row else 0
        if upto_seq <= after:
            return 0
        if _anything_running(conn):
            events: list[JourneyEvent] = read_events(after, upto_seq)
            engine.handle_events(conn, events)
            fed = len(events)
        if row is None:
            conn.execute(t.journey_cursors.insert().values(name=EVENTS_CURSOR, seq=upto_seq))
        else:
            conn.execute(
                t.journey_cursors.update().where(t.journey_cursors.c.name == EVENTS_CURSOR).values(seq=upto_seq)
            )
    return fed


def _anything_running(conn: sa.Connection) -> bool:
    """Whether any journey is active or any instance still runs (else events need not be read at all)."""
    inst = t.journey_instances
    active = conn.execute(sa.select(t.journeys.c.id).where(t.journeys.c.status == "active").limit(1)).first()
    return bool(active or conn.execute(sa.select(inst.c.id).where(inst.c.state == "active").limit(1)).first())


def feed_segment_changes(engine: Engine, changes: Sequence[SegmentChange]) -> None:
    """Hand segment entries and exits to the engine."""
    with engine.state.begin() as conn:
        engine.handle_segment_changes(conn, changes)


def tasks(state: sa.Engine, queue: str | None = None, store_id: str | None = None) -> list[dict[str, Any]]:
    """Open tasks created by journeys for store associates or the call centre."""
    act = t.journey_actions
    query = sa.select(act).where(act.c.kind == "task", act.c.status == "open").order_by(act.c.created_at)
    if queue:
        query = query.where(act.c.queue == queue)
    if store_id:
        query = query.where(act.c.store_id == store_id)
    with state.connect() as conn:
        return [
            {**{k: v for k, v in row.items() if k != "payload"}, **json.loads(row["payload"])}
            for row in conn.execute(query).mappings()
        ]


def stats(state: sa.Engine, name: str) -> dict[str, Any]:
    """Entered, active, completed, exited by reason, converted, per-step counts, and conversion vs holdout."""
    inst, tr = t.journey_instances, t.journey_transitions
    with state.connect() as conn:
        if _latest(conn, name) is None:
            raise JourneyError(f"no journey named {name!r}", code="journey_not_found", status=404)
        groups = conn.execute(
            sa.select(
                inst.c.holdout,
                sa.func.count(),
                sa.func.count(inst.c.converted_at),
            )
            .where(inst.c.journey_name == name)
            .group_by(inst.c.holdout)
        ).all()
        reasons = conn.execute(
            sa.select(inst.c.exit_reason, sa.func.count())
            .where(inst.c.journey_name == name, inst.c.state == "exited")
            .group_by(inst.c.exit_reason)
        ).all()
        states: dict[str, int] = dict(
            conn.execute(
                sa.select(inst.c.state, sa.func.count()).where(inst.c.journey_name == name).group_by(inst.c.state)
            ).all()
        )
        waiting: dict[str | None, int] = dict(
            conn.execute(
                sa.select(inst.c.step_id, sa.func.count())
                .where(inst.c.journey_name == name, inst.c.state == "active")
                .group_by(inst.c.step_id)
            ).all()
        )
        steps = conn.execute(
            sa.select(tr.c.step_id, tr.c.outcome, sa.func.count())
            .join(inst, inst.c.id == tr.c.instance_id)
            .where(inst.c.journey_name == name)
            .group_by(tr.c.step_id, tr.c.outcome)
        ).all()
    per_step: dict[str, dict[str, Any]] = {}
    for step_id, outcome, count in steps:
        entry = per_step.setdefault(step_id, {"step": step_id, "passed": 0, "outcomes": {}, "waiting": 0})
        entry["passed"] += count
        entry["outcomes"][outcome] = count
    for step_id, count in waiting.items():
        if step_id:
            key = step_id.split(">", 1)[0]
            per_step.setdefault(key, {"step": key, "passed": 0, "outcomes": {}, "waiting": 0})["waiting"] += count
    by_group = {bool(h): (n, c) for h, n, c in groups}
    treated, control = by_group.get(False, (0, 0)), by_group.get(True, (0, 0))
    return {
        "name": name,
        "entered": treated[0] + control[0],
        "active": states.get("active", 0),
        "completed": states.get("completed", 0),
        "exited": {reason: count for reason, count in reasons},
        "converted": treated[1] + control[1],
        "steps": list(per_step.values()),
        "conversion": conversion_lift(treated, control),
    }


def conversion_lift(treated: tuple[int, int], control: tuple[int, int], z: float = 1.959964) -> dict[str, Any]:
    """Conversion rate of the journey vs its holdout: rates, absolute lift and its 95% (Wald) interval."""
    (n1, c1), (n0, c0) = treated, control
    out: dict[str, Any] = {
        "journey": {"entered": n1, "converted": c1, "rate": c1 / n1 if n1 else None},
        "holdout": {"entered": n0, "converted": c0, "rate": c0 / n0 if n0 else None},
        "lift_abs": None,
        "ci_low": None,
        "ci_high": None,
    }
    if n1 and n0:
        p1, p0 = c1 / n1, c0 / n0
        se = math.sqrt(p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0)
        out.update(lift_abs=p1 - p0, ci_low=p1 - p0 - z * se, ci_high=p1 - p0 + z * se)
    return out


def definition_of(text: str) -> Journey:
    """Validate a definition without saving it (errors say where and why)."""
    return load_journey(text)


def due_count(state: sa.Engine, now: datetime) -> int:
    """Instances due now (for the runner and health)."""
    inst = t.journey_instances
    with state.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count()).select_from(inst).where(inst.c.state == "active", inst.c.due_at <= now)
            ).scalar_one()
        )


def simulate(engine: Engine, text_or_name: str, profile_id: str, traits: dict[str, Any]) -> list[str]:
    """Dry-run a definition (YAML text, or the name of a saved journey) for one profile; nothing is stored."""
    from accord.journeys.simulate import simulate as run

    if "\n" in text_or_name or ":" in text_or_name:
        journey = load_journey(text_or_name)
    else:
        with engine.state.connect() as conn:
            latest = _latest(conn, text_or_name)
            if latest is None:
                raise JourneyError(f"no journey named {text_or_name!r}", code="journey_not_found", status=404)
            journey = engine.definition(conn, latest["id"])
    return run(engine, journey, profile_id, traits, engine.clock())
