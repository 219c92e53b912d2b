"""The durable journey engine: entries, due instances run in batches inside one transaction per batch.

Every transition is a row with a unique (instance, step) key written in the same transaction as the side effects
it causes (an outbox row of messaging, a webhook or task row, an emitted event) and the instance's new position.
A crash anywhere rolls the whole batch back, so no step is lost or run twice; on PostgreSQL several workers take
disjoint batches with FOR UPDATE SKIP LOCKED.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa

from accord.identity import queries as identity_queries
from accord.journeys import tables as t
from accord.journeys.conditions import event_matches, holds
from accord.journeys.definition import WEEKDAYS, Condition, EventMatch, Journey, Step, parse_journey
from accord.storage import new_id

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]


@dataclass(frozen=True)
class JourneyEvent:
    """What the engine needs to know of one event on a profile's timeline."""

    profile_id: str
    event: str
    timestamp: datetime
    channel: str
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SegmentChange:
    """A profile entered or left a segment."""

    segment: str
    profile_id: str
    entered: bool
    at: datetime


@dataclass(frozen=True)
class SendRequest:
    """A message a journey step asks messaging to send, with its idempotency key."""

    profile_id: str
    template: str
    channels: list[str]
    purpose: str
    idempotency_key: str
    journey: str
    step_id: str
    properties: dict[str, Any]


# Messaging as journeys see it: queue one message in the caller's transaction; returns the outcome.
Sender = Callable[[sa.Connection, SendRequest], str]
# Timeline events from journeys (profile updates), appended in the caller's transaction.
Emitter = Callable[[sa.Connection, Sequence[dict[str, Any]]], None]


TraitsLookup = Callable[[Sequence[str]], dict[str, dict[str, Any]]]


def _no_traits(profile_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    return {}


def in_holdout(journey: str, profile_id: str, percent: float) -> bool:
    """Deterministic control-group membership of a profile in a journey (the same answer on every entry)."""
    if percent <= 0:
        return False
    digest = hashlib.sha256(f"holdout:{journey}:{profile_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 10_000 < percent * 100


def _bucket(key: str) -> float:
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "big") % 1_000_000 / 10_000


@dataclass
class _Instance:
    id: str
    journey_id: str
    journey_name: str
    profile_id: str
    state: str
    step_id: str | None
    due_at: datetime | None
    waiting_for: str | None
    holdout: bool
    entered_at: datetime
    entry_properties: dict[str, Any]
    exit_reason: str | None = None
    ended_at: datetime | None = None
    resume_to: str | None = None  # set when the awaited event arrived: where a wait_until continues


@dataclass
class _Batch:
    """What one batch of work writes, in one transaction."""

    transitions: list[dict[str, Any]] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)
    profile_updates: list[dict[str, Any]] = field(default_factory=list)


class Engine:
    """Runs journeys for profiles: enter on triggers, advance due instances, exit and convert on events."""

    def __init__(
        self,
        state: sa.Engine,
        sender: Sender | None = None,
        emitter: Emitter | None = None,
        traits: TraitsLookup = _no_traits,
        clock: Clock | None = None,
        default_timezone: str = "UTC",
        trigger_max_age: timedelta = timedelta(days=1),
    ) -> None:
        self.state = state
        self.sender = sender
        self.emitter = emitter
        self.traits = traits
        self.clock: Clock = clock or (lambda: datetime.now(UTC))
        self.default_timezone = default_timezone
        self.trigger_max_age = trigger_max_age
        self._definitions: dict[str, Journey] = {}
        self.on_work: Callable[[], None] | None = None  # set by the composition root to wake the runner

    # -- definitions -----------------------------------------------------------------------------------------
    def definition(self, conn: sa.Connection, journey_id: str) -> Journey:
        """The parsed definition of one journey version (cached: versions never change)."""
        cached = self._definitions.get(journey_id)
        if cached is None:
            text = conn.execute(sa.select(t.journeys.c.definition).where(t.journeys.c.id == journey_id)).scalar_one()
            cached = self._definitions[journey_id] = parse_journey(json.loads(text))
        return cached

    def _active_versions(self, conn: sa.Connection) -> list[tuple[str, Journey]]:
        """(version id, definition) of the latest version of every active journey."""
        latest = (
            sa.select(t.journeys.c.name, sa.func.max(t.journeys.c.version).label("version"))
            .group_by(t.journeys.c.name)
            .subquery()
        )
        rows = conn.execute(
            sa.select(t.journeys.c.id)
            .join(latest, sa.and_(latest.c.name == t.journeys.c.name, latest.c.version == t.journeys.c.version))
            .where(t.journeys.c.status == "active")
        ).scalars()
        return [(jid, self.definition(conn, jid)) for jid in rows]

    # -- entering --------------------------------------------------------------------------------------------
    def enter(
        self,
        conn: sa.Connection,
        journey_id: str,
        journey: Journey,
        profile_ids: Iterable[str],
        properties: dict[str, Any] | None = None,
        now: datetime | None = None,
    ) -> list[str]:
        """Enter profiles that the entry rules admit; returns the new instance ids (due at once)."""
        now = now or self.clock()
        wanted = list(dict.fromkeys(profile_ids))
        if not wanted:
            return []
        inst = t.journey_instances
        history: dict[str, list[tuple[str, datetime]]] = defaultdict(list)
        for chunk in _chunks(wanted, 500):
            rows = conn.execute(
                sa.select(inst.c.profile_id, inst.c.state, inst.c.entered_at).where(
                    inst.c.journey_name == journey.name, inst.c.profile_id.in_(chunk)
                )
            )
            for pid, st, entered in rows:
                history[pid].append((st, entered))
        room = None
        if journey.entry_limit is not None:
            used = conn.execute(
                sa.select(sa.func.count()).select_from(inst).where(inst.c.journey_name == journey.name)
            ).scalar_one()
            room = max(journey.entry_limit - used, 0)
        admitted: list[str] = []
        for pid in wanted:
            past = history.get(pid, [])
            if journey.reentry == "never" and past:
                continue
            if journey.reentry == "after_exit" and any(st == "active" for st, _ in past):
                continue
            if journey.min_interval and any(now - entered < journey.min_interval for _, entered in past):
                continue
            if room is not None and len(admitted) >= room:
                break
            admitted.append(pid)
        rows_out: list[dict[str, Any]] = [
            {
                "id": new_id(),
                "journey_id": journey_id,
                "journey_name": journey.name,
                "profile_id": pid,
                "state": "active",
                "step_id": journey.steps[0].id,
                "due_at": now,
                "waiting_for": None,
                "holdout": in_holdout(journey.name, pid, journey.holdout_percent),
                "entered_at": now,
                "ended_at": None,
                "exit_reason": None,
                "converted_at": None,
                "entry_properties": json.dumps(properties or {}, default=str),
                "version_no": 0,
            }
            for pid in admitted
        ]
        if rows_out:
            version = conn.execute(sa.select(t.journeys.c.version).where(t.journeys.c.id == journey_id)).scalar_one()
            for row in rows_out:
                row["version_no"] = version
            conn.execute(inst.insert(), rows_out)
            if self.on_work:
                self.on_work()
        return [str(r["id"]) for r in rows_out]

    # -- events and segment changes ----------------------------------------------------------------------------
    def handle_events(self, conn: sa.Connection, events: Sequence[JourneyEvent]) -> None:
        """Apply events in order: exits, awaited events, goals of running instances, then triggers."""
        if not events:
            return
        now = self.clock()
        inst = t.journey_instances
        profiles = list({e.profile_id for e in events if e.profile_id})
        # instances that started on a profile since merged into an event's profile belong to that person too
        live = {pid: pid for pid in profiles}
        for chunk in _chunks(profiles, 500):
            live.update(identity_queries.retired_into(conn, list(chunk)))
        running: dict[str, list[Any]] = defaultdict(list)
        open_goals: dict[str, list[Any]] = defaultdict(list)
        for chunk in _chunks(list(live), 500):
            for row in conn.execute(
                sa.select(inst).where(inst.c.profile_id.in_(chunk), inst.c.converted_at.is_(None))
            ).mappings():
                person = live[row["profile_id"]]
                open_goals[person].append(row)
                if row["state"] == "active":
                    running[person].append(row)
        ended: set[str] = set()
        converted: set[str] = set()
        for event in sorted(events, key=lambda e: e.timestamp):
            for row in open_goals.get(event.profile_id, []):
                if row["id"] in converted:
                    continue
                journey = self.definition(conn, row["journey_id"])
                in_window = journey.goal_within is None or event.timestamp <= row["entered_at"] + journey.goal_within
                if (
                    journey.goal
                    and in_window
                    and event.timestamp >= row["entered_at"]
                    and event_matches(journey.goal, event)
                ):
                    converted.add(row["id"])
                    conn.execute(inst.update().where(inst.c.id == row["id"]).values(converted_at=event.timestamp))
                    if journey.goal_exits and row["state"] == "active" and row["id"] not in ended:
                        ended.add(row["id"])
                        self._end(conn, row["id"], "exited", f"goal: {event.event}", now)
            for row in running.get(event.profile_id, []):
                if row["id"] in ended or event.timestamp < row["entered_at"] - timedelta(minutes=5):
                    continue
                journey = self.definition(conn, row["journey_id"])
                exit_match = next((m for m in journey.exit_events if event_matches(m, event)), None)
                if exit_match is not None:
                    ended.add(row["id"])
                    self._end(conn, row["id"], "exited", f"exit event: {event.event} ({event.channel})", now)
                    continue
                if row["waiting_for"] and row["waiting_for"] == event.event:
                    step = journey.step(row["step_id"])
                    if event_matches(_wait_match(step), event):
                        target = step.spec["then"] or journey.following(step.id)
                        conn.execute(
                            inst.update()
                            .where(inst.c.id == row["id"], inst.c.waiting_for.is_not(None))
                            .values(waiting_for=None, due_at=now, step_id=f"{step.id}>{target or ''}")
                        )
                        if self.on_work:
                            self.on_work()
        triggered: dict[str, list[JourneyEvent]] = defaultdict(list)
        active = self._active_versions(conn)
        for event in events:
            if not event.profile_id or now - event.timestamp > self.trigger_max_age:
                continue
            for jid, journey in active:
                if journey.trigger_event and event_matches(journey.trigger_event, event):
                    triggered[jid].append(event)
        for jid, evs in triggered.items():
            journey = self.definition(conn, jid)
            for event in evs:
                self.enter(conn, jid, journey, [event.profile_id], {"event": event.event, **event.properties}, now)

    def handle_segment_changes(self, conn: sa.Connection, changes: Sequence[SegmentChange]) -> None:
        """Enter journeys triggered by segment entry/exit; exit instances whose exit criteria name the segment."""
        if not changes:
            return
        now = self.clock()
        active = self._active_versions(conn)
        inst = t.journey_instances
        for change in changes:
            key = "segment_entered" if change.entered else "segment_exited"
            for jid, journey in active:
                if journey.trigger.get(key) == change.segment:
                    self.enter(conn, jid, journey, [change.profile_id], {key: change.segment}, now)
            if change.entered:
                continue
            rows = conn.execute(
                sa.select(inst.c.id, inst.c.journey_id).where(
                    inst.c.profile_id == change.profile_id, inst.c.state == "active"
                )
            ).all()
            for iid, jid in rows:
                if change.segment in self.definition(conn, jid).exit_segments:
                    self._end(conn, iid, "exited", f"left segment {change.segment}", now)

    def _end(self, conn: sa.Connection, instance_id: str, state: str, reason: str, now: datetime) -> None:
        inst = t.journey_instances
        conn.execute(
            inst.update()
            .where(inst.c.id == instance_id, inst.c.state == "active")
            .values(state=state, exit_reason=reason, ended_at=now, step_id=None, due_at=None, waiting_for=None)
        )

    # -- running due instances -------------------------------------------------------------------------------
    def run_due(self, limit: int = 1000) -> int:
        """Advance up to LIMIT due instances in one transaction; returns how many were advanced."""
        now = self.clock()
        inst = t.journey_instances
        with self.state.begin() as conn:
            query = sa.select(inst).where(inst.c.state == "active", inst.c.due_at <= now)
            paused = self._paused_names(conn)
            if paused:
                query = query.where(inst.c.journey_name.not_in(paused))
            query = query.order_by(inst.c.due_at).limit(limit)
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            rows = conn.execute(query).mappings().all()
            if not rows:
                return 0
            instances = [
                _Instance(
                    id=r["id"],
                    journey_id=r["journey_id"],
                    journey_name=r["journey_name"],
                    profile_id=r["profile_id"],
                    state=r["state"],
                    step_id=r["step_id"],
                    due_at=r["due_at"],
                    waiting_for=r["waiting_for"],
                    holdout=r["holdout"],
                    entered_at=r["entered_at"],
                    entry_properties=json.loads(r["entry_properties"]),
                )
                for r in rows
            ]
            needs_traits = {
                i.profile_id
                for i in instances
                if any(s.kind in ("branch", "wait") for s in self.definition(conn, i.journey_id).steps)
            }
            traits = self.traits(sorted(needs_traits)) if needs_traits else {}
            batch = _Batch()
            for one in instances:
                journey = self.definition(conn, one.journey_id)
                self._advance(conn, one, journey, traits.get(one.profile_id, {}), now, batch)
            self._write(conn, instances, batch, now)
            return len(instances)

    def run_until_idle(self, limit: int = 1000) -> int:
        """Run batches until nothing is due; returns the instances advanced."""
        total = 0
        while True:
            done = self.run_due(limit)
            total += done
            if done == 0:
                return total

    def _paused_names(self, conn: sa.Connection) -> set[str]:
        latest = (
            sa.select(t.journeys.c.name, sa.func.max(t.journeys.c.version).label("version"))
            .group_by(t.journeys.c.name)
            .subquery()
        )
        return set(
            conn.execute(
                sa.select(t.journeys.c.name)
                .join(latest, sa.and_(latest.c.name == t.journeys.c.name, latest.c.version == t.journeys.c.version))
                .where(t.journeys.c.status == "paused")
            ).scalars()
        )

    def _advance(
        self,
        conn: sa.Connection,
        one: _Instance,
        journey: Journey,
        traits: dict[str, Any],
        now: datetime,
        batch: _Batch,
    ) -> None:
        """Run ONE instance from its current step until it waits or ends (each step at most once)."""
        step_id = one.step_id
        if step_id and ">" in step_id:  # an awaited event arrived: record the wait_until outcome and continue
            wait_id, target = step_id.split(">", 1)
            self._record(batch, one, wait_id, "event arrived", now)
            step_id = target or None
        elif one.waiting_for and step_id:  # a wait_until timed out
            step = journey.step(step_id)
            self._record(batch, one, step.id, "timed out", now)
            step_id = step.spec["else"] or journey.following(step.id)
            one.waiting_for = None
        for _ in range(len(journey.steps) + 1):
            if step_id is None:
                one.state, one.step_id, one.due_at, one.ended_at = "completed", None, None, now
                one.exit_reason = "completed"
                return
            step = journey.step(step_id)
            outcome, next_id, wait_until = self._run_step(conn, one, journey, step, traits, now, batch)
            if step.kind == "wait_until":  # waiting: no transition until the event arrives or it times out
                one.step_id, one.due_at, one.waiting_for = step.id, wait_until, step.spec["event"]
                return
            self._record(batch, one, step.id, outcome, now)
            if step.kind == "exit" or outcome.startswith("exit"):
                one.state, one.step_id, one.due_at, one.ended_at = "exited", None, None, now
                one.exit_reason = f"exit step {step.id}"
                return
            if wait_until is not None:
                one.step_id, one.due_at = next_id, wait_until
                if next_id is None:
                    one.due_at = wait_until  # completes when the wait ends
                return
            step_id = next_id
        raise RuntimeError(f"journey {journey.name}: instance {one.id} did not settle")  # acyclic by validation

    def _run_step(
        self,
        conn: sa.Connection,
        one: _Instance,
        journey: Journey,
        step: Step,
        traits: dict[str, Any],
        now: datetime,
        batch: _Batch,
    ) -> tuple[str, str | None, datetime | None]:
        """Do one step: (outcome, next step id, wake-up time if the instance now waits)."""
        spec = step.spec
        following = journey.following(step.id)
        if step.kind == "send":
            if one.holdout:
                return "held out (control group)", following, None
            if self.sender is None:
                return "not sent: no messaging configured", following, None
            request = SendRequest(
                profile_id=one.profile_id,
                template=spec["template"],
                channels=spec["channels"],
                purpose=spec["purpose"],
                idempotency_key=f"journey:{one.id}:{step.id}",
                journey=journey.name,
                step_id=step.id,
                properties=one.entry_properties,
            )
            return self.sender(conn, request), following, None
        if step.kind == "wait":  # a date to wait for may come with the entry (an appointment) or be a trait
            return "waiting", following, self.wake_time(spec, {**traits, **one.entry_properties}, now)
        if step.kind == "wait_until":
            return "waiting for event", following, now + timedelta(seconds=spec["timeout"])
        if step.kind == "branch":
            for arm in spec["arms"]:
                if all(holds(c["field"], c["op"], c["value"], traits) for c in arm["if"]):
                    return f"branch -> {arm['next']}", arm["next"], None
            target = spec["else"] or following
            return f"branch -> {target or 'end'} (else)", target, None
        if step.kind == "split":
            point, edge = _bucket(f"split:{one.id}:{step.id}"), 0.0
            for arm in spec["arms"]:
                edge += arm["percent"]
                if point < edge:
                    return f"split -> {arm['name']}", arm["next"], None
            return f"split -> {spec['arms'][-1]['name']}", spec["arms"][-1]["next"], None
        if step.kind == "update_profile":
            batch.profile_updates.append(
                {"type": "identify", "userId": None, "profile_id": one.profile_id, "traits": spec["traits"]}
            )
            return "profile updated", following, None
        if step.kind in ("webhook", "task"):
            payload = (
                {"url": spec["url"], "body": spec["body"], "profile_id": one.profile_id, "journey": journey.name}
                if step.kind == "webhook"
                else {"title": spec["title"], "profile_id": one.profile_id, "journey": journey.name}
            )
            batch.actions.append(
                {
                    "id": new_id(),
                    "instance_id": one.id,
                    "step_id": step.id,
                    "kind": step.kind,
                    "queue": spec.get("queue"),
                    "store_id": spec.get("store_id") or one.entry_properties.get("store_id"),
                    "payload": json.dumps(payload, default=str),
                    "status": "pending" if step.kind == "webhook" else "open",
                    "attempts": 0,
                    "next_attempt_at": now if step.kind == "webhook" else None,
                    "last_error": None,
                    "created_at": now,
                }
            )
            return ("webhook queued" if step.kind == "webhook" else "task created"), following, None
        if step.kind == "goal":
            return f"goal checkpoint {spec['label']}", following, None
        return "exit", None, None

    def wake_time(self, spec: dict[str, Any], traits: dict[str, Any], now: datetime) -> datetime:
        """When a wait ends: after a duration, then at the next allowed local time / weekday, or at a date trait."""
        wake = now + timedelta(seconds=spec.get("duration", 0))
        if "until_trait" in spec:
            value = traits.get(spec["until_trait"])
            moment = _as_datetime(value)
            if moment is not None:
                wake = max(now, moment + timedelta(seconds=spec.get("offset", 0)))
        if "until_local" in spec or "weekdays" in spec:
            zone = _zone(traits.get("timezone"), self.default_timezone)
            at = time.fromisoformat(spec.get("until_local", "00:00"))
            days = {WEEKDAYS.index(d) for d in spec.get("weekdays", WEEKDAYS)}
            local = wake.astimezone(zone)
            for offset in range(8):
                day = (local + timedelta(days=offset)).date()
                candidate = datetime.combine(day, at, tzinfo=zone)
                if "until_local" not in spec and offset == 0:
                    candidate = local
                if candidate >= local and candidate.weekday() in days:
                    return candidate.astimezone(UTC)
        return wake

    def _record(self, batch: _Batch, one: _Instance, step_id: str, outcome: str, now: datetime) -> None:
        batch.transitions.append(
            {
                "instance_id": one.id,
                "journey_id": one.journey_id,
                "step_id": step_id,
                "outcome": outcome[:200],
                "at": now,
            }
        )

    def _write(self, conn: sa.Connection, instances: list[_Instance], batch: _Batch, now: datetime) -> None:
        inst = t.journey_instances
        if batch.actions:
            conn.execute(t.journey_actions.insert(), batch.actions)
        if batch.profile_updates and self.emitter is not None:
            self.emitter(conn, batch.profile_updates)
        if conn.dialect.name == "sqlite":  # the hot path: skip per-row type processing
            conn.exec_driver_sql(
                "INSERT INTO journey_transitions (instance_id, journey_id, step_id, outcome, at) VALUES (?,?,?,?,?)",
                [
                    (r["instance_id"], r["journey_id"], r["step_id"], r["outcome"], _sqlite_time(r["at"]))
                    for r in batch.transitions
                ],
            )
            conn.exec_driver_sql(
                "UPDATE journey_instances SET state=?, step_id=?, due_at=?, waiting_for=?, ended_at=?, exit_reason=? "
                "WHERE id=?",
                [
                    (
                        i.state,
                        i.step_id,
                        _sqlite_time(i.due_at),
                        i.waiting_for,
                        _sqlite_time(i.ended_at),
                        i.exit_reason,
                        i.id,
                    )
                    for i in instances
                ],
            )
            return
        if batch.transitions:
            conn.execute(t.journey_transitions.insert(), batch.transitions)
        conn.execute(
            inst.update()
            .where(inst.c.id == sa.bindparam("b_id"))
            .values(
                state=sa.bindparam("b_state"),
                step_id=sa.bindparam("b_step"),
                due_at=sa.bindparam("b_due"),
                waiting_for=sa.bindparam("b_waiting"),
                ended_at=sa.bindparam("b_ended"),
                exit_reason=sa.bindparam("b_reason"),
            ),
            [
                {
                    "b_id": i.id,
                    "b_state": i.state,
                    "b_step": i.step_id,
                    "b_due": i.due_at,
                    "b_waiting": i.waiting_for,
                    "b_ended": i.ended_at,
                    "b_reason": i.exit_reason,
                }
                for i in instances
            ],
        )


def _sqlite_time(value: datetime | None) -> str | None:
    """A time as the state store keeps it in SQLite (UTC, the format SQLAlchemy writes and compares)."""
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _wait_match(step: Step) -> EventMatch:
    """The event a wait_until step listens for, with its filters."""
    return EventMatch(step.spec["event"], tuple(Condition(**c) for c in step.spec["where"]))


def _zone(name: Any, default: str) -> ZoneInfo:
    for candidate in (name, default, "UTC"):
        if isinstance(candidate, str) and candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def _as_datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
