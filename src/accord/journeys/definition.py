"""Journey definitions: the YAML/JSON language, parsed into a validated plan with precise errors."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import time, timedelta
from typing import Any

import yaml

from accord.journeys.errors import JourneyError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
STEP_KINDS = ("send", "wait", "wait_until", "branch", "split", "update_profile", "webhook", "task", "goal", "exit")
REENTRY = ("never", "after_exit", "always")
OPERATORS = ("eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "contains", "exists")


class DefinitionError(JourneyError):
    """A journey definition that cannot run, with where (path, line) and why."""

    def __init__(self, path: str, message: str, line: int | None = None) -> None:
        where = f"{path} (line {line})" if line else path
        super().__init__(f"{where}: {message}", code="invalid_journey", status=422)
        self.path = path
        self.line = line


@dataclass(frozen=True)
class Condition:
    """A test on a field (a trait, or an event property): `field op value`."""

    field: str
    op: str
    value: Any = None


@dataclass(frozen=True)
class EventMatch:
    """An event name and property filters (all must hold)."""

    event: str
    where: tuple[Condition, ...] = ()


@dataclass(frozen=True)
class Step:
    """One step of a journey; `next` is the id of the step that follows (None: the one below it)."""

    id: str
    kind: str
    spec: dict[str, Any]
    next: str | None = None


@dataclass(frozen=True)
class Journey:
    """A validated journey definition."""

    name: str
    description: str
    trigger: dict[str, Any]
    trigger_event: EventMatch | None
    reentry: str
    min_interval: timedelta | None
    entry_limit: int | None
    exit_events: tuple[EventMatch, ...]
    exit_segments: tuple[str, ...]
    goal: EventMatch | None
    goal_within: timedelta | None
    goal_exits: bool
    holdout_percent: float
    steps: tuple[Step, ...]
    source: dict[str, Any] = field(repr=False, default_factory=dict)

    def step(self, step_id: str) -> Step:
        """The step with this id."""
        for one in self.steps:
            if one.id == step_id:
                return one
        raise KeyError(step_id)

    def following(self, step_id: str, explicit: str | None = None) -> str | None:
        """The id of the step after STEP_ID (EXPLICIT if given); None at the end of the journey."""
        if explicit:
            return explicit
        chosen = self.step(step_id)
        if chosen.next:
            return chosen.next
        ids = [s.id for s in self.steps]
        index = ids.index(step_id)
        return ids[index + 1] if index + 1 < len(ids) else None


def parse_duration(text: Any, path: str) -> timedelta:
    """'90m', '1h', '2d', '1w' (or a number of seconds) as a timedelta."""
    if isinstance(text, int | float) and not isinstance(text, bool) and text >= 0:
        return timedelta(seconds=float(text))
    match = _DURATION.match(str(text)) if isinstance(text, str) else None
    if not match:
        raise DefinitionError(path, f"{text!r} is not a duration; write e.g. 30m, 1h, 2d or 1w")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


def _local_time(text: Any, path: str) -> time:
    try:
        hour, minute = str(text).split(":")
        return time(int(hour), int(minute))
    except ValueError:
        raise DefinitionError(path, f"{text!r} is not a local time of day; write HH:MM, e.g. 10:00") from None


def _conditions(raw: Any, path: str) -> tuple[Condition, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise DefinitionError(path, "must be a mapping of field: value or field: {operator: value}")
    out = []
    for name, test in raw.items():
        if isinstance(test, dict):
            if len(test) != 1:
                raise DefinitionError(f"{path}.{name}", "give exactly one operator, e.g. {gte: 100}")
            (op, value), *_ = test.items()
            if op not in OPERATORS:
                raise DefinitionError(f"{path}.{name}", f"unknown operator {op!r}; use one of {', '.join(OPERATORS)}")
            if op in ("in", "not_in") and not isinstance(value, list):
                raise DefinitionError(f"{path}.{name}.{op}", "needs a list of values")
            out.append(Condition(str(name), op, value))
        else:
            out.append(Condition(str(name), "eq", test))
    return tuple(out)


def _event_match(raw: Any, path: str) -> EventMatch:
    if isinstance(raw, str) and raw.strip():
        return EventMatch(raw.strip())
    if isinstance(raw, dict) and isinstance(raw.get("event"), str) and raw["event"].strip():
        unknown = set(raw) - {"event", "where", "within", "exit", "timeout"}
        if unknown:
            raise DefinitionError(path, f"unknown key(s) {', '.join(sorted(unknown))}")
        return EventMatch(raw["event"].strip(), _conditions(raw.get("where"), f"{path}.where"))
    raise DefinitionError(path, "needs an event name: `event: Order Completed` (optionally with `where:` filters)")


def _step(raw: Any, index: int, ids: set[str]) -> Step:
    path = f"steps[{index}]"
    if not isinstance(raw, dict):
        raise DefinitionError(path, "each step is a mapping with an `id` and one kind: " + ", ".join(STEP_KINDS))
    kinds = [k for k in raw if k in STEP_KINDS]
    if len(kinds) != 1:
        raise DefinitionError(path, f"give exactly one step kind of {', '.join(STEP_KINDS)} (found {kinds or 'none'})")
    kind = kinds[0]
    step_id = str(raw.get("id") or f"{kind}_{index + 1}")
    if step_id in ids:
        raise DefinitionError(f"{path}.id", f"step id {step_id!r} is used twice")
    unknown = set(raw) - {"id", "next", kind, "then", "else", "channels", "template", "purpose"}
    if unknown:
        raise DefinitionError(path, f"unknown key(s) {', '.join(sorted(unknown))}")
    spec = _step_spec(kind, raw, f"{path}.{kind}")
    return Step(step_id, kind, spec, str(raw["next"]) if raw.get("next") else None)


def _step_spec(kind: str, raw: dict[str, Any], path: str) -> dict[str, Any]:
    body = raw[kind]
    if kind == "send":
        spec = body if isinstance(body, dict) else {"template": body}
        if not isinstance(spec.get("template"), str) or not spec["template"]:
            raise DefinitionError(path, "needs `template: NAME`")
        channels = spec.get("channels", ["best"])
        if not isinstance(channels, list) or not channels:
            raise DefinitionError(f"{path}.channels", "a non-empty list, e.g. [push, sms, email] or [best]")
        purpose = spec.get("purpose", "marketing")
        if purpose not in ("marketing", "transactional"):
            raise DefinitionError(f"{path}.purpose", "marketing or transactional")
        return {"template": spec["template"], "channels": [str(c) for c in channels], "purpose": purpose}
    if kind == "wait":
        if isinstance(body, dict):
            out: dict[str, Any] = {}
            if "duration" in body:
                out["duration"] = parse_duration(body["duration"], f"{path}.duration").total_seconds()
            if "until_local" in body:
                out["until_local"] = _local_time(body["until_local"], f"{path}.until_local").isoformat("minutes")
            if "weekdays" in body:
                days = body["weekdays"]
                if not isinstance(days, list) or any(d not in WEEKDAYS for d in days) or not days:
                    raise DefinitionError(f"{path}.weekdays", f"a list of {', '.join(WEEKDAYS)}")
                out["weekdays"] = list(days)
            if "until_trait" in body:
                out["until_trait"] = str(body["until_trait"])
                out["offset"] = parse_duration(body.get("offset", 0), f"{path}.offset").total_seconds() * (
                    -1 if body.get("before", True) else 1
                )
            if not out:
                raise DefinitionError(path, "give duration, until_local (with weekdays) or until_trait")
            return out
        return {"duration": parse_duration(body, path).total_seconds()}
    if kind == "wait_until":
        if not isinstance(body, dict) or "timeout" not in body:
            raise DefinitionError(path, "needs `event:` and `timeout:` (and optional then:/else: step ids)")
        match = _event_match(body, path)
        return {
            "event": match.event,
            "where": [c.__dict__ for c in match.where],
            "timeout": parse_duration(body["timeout"], f"{path}.timeout").total_seconds(),
            "then": raw.get("then"),
            "else": raw.get("else"),
        }
    if kind == "branch":
        if not isinstance(body, list) or not body:
            raise DefinitionError(path, "a list of {if: {trait: condition...}, next: STEP}")
        arms = []
        for i, arm in enumerate(body):
            if not isinstance(arm, dict) or "next" not in arm or "if" not in arm:
                raise DefinitionError(f"{path}[{i}]", "each arm needs `if:` and `next:`")
            arms.append({"if": [c.__dict__ for c in _conditions(arm["if"], f"{path}[{i}].if")], "next": arm["next"]})
        return {"arms": arms, "else": raw.get("else")}
    if kind == "split":
        if not isinstance(body, list) or not body:
            raise DefinitionError(path, "a list of {percent: N, next: STEP}")
        total = 0.0
        arms = []
        for i, arm in enumerate(body):
            pct = arm.get("percent") if isinstance(arm, dict) else None
            if not isinstance(pct, int | float) or pct <= 0 or "next" not in arm:
                raise DefinitionError(f"{path}[{i}]", "each arm needs `percent:` (> 0) and `next:`")
            total += float(pct)
            arms.append({"percent": float(pct), "next": arm["next"], "name": str(arm.get("name", arm["next"]))})
        if abs(total - 100.0) > 1e-9:
            raise DefinitionError(path, f"percentages add up to {total:g}, not 100")
        return {"arms": arms}
    if kind == "update_profile":
        if not isinstance(body, dict) or not isinstance(body.get("traits"), dict) or not body["traits"]:
            raise DefinitionError(path, "needs `traits: {name: value, ...}`")
        return {"traits": body["traits"]}
    if kind == "webhook":
        if not isinstance(body, dict) or not str(body.get("url", "")).startswith(("http://", "https://")):
            raise DefinitionError(path, "needs `url: http(s)://...` (and optional `body:`)")
        return {"url": body["url"], "body": body.get("body", {})}
    if kind == "task":
        if not isinstance(body, dict) or not body.get("title") or body.get("queue") not in ("store", "call_center"):
            raise DefinitionError(path, "needs `queue: store|call_center` and `title:`")
        return {"queue": body["queue"], "title": str(body["title"]), "store_id": body.get("store_id")}
    if kind == "goal":
        return {"label": str(body) if body else "goal"}
    return {"exit": True}


def parse_journey(data: Any) -> Journey:
    """Validate a parsed definition (a mapping) into a Journey; raises DefinitionError with the path at fault."""
    if not isinstance(data, dict):
        raise DefinitionError("(top)", "a journey is a mapping with name, trigger and steps")
    unknown = set(data) - {"name", "description", "trigger", "entry", "exit", "goal", "holdout", "steps"}
    if unknown:
        raise DefinitionError("(top)", f"unknown key(s) {', '.join(sorted(unknown))}")
    name = data.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9 _.-]{0,99}", name):
        raise DefinitionError("name", "1-100 letters, digits, spaces, dots, dashes or underscores")
    trigger = data.get("trigger")
    trigger_event = None
    if not isinstance(trigger, dict) or not trigger:
        raise DefinitionError(
            "trigger", "give `event:` (with `where:`), `segment_entered:`, `segment_exited:` or `api: true`"
        )
    if "event" in trigger:
        trigger_event = _event_match(trigger, "trigger")
    elif not any(k in trigger for k in ("segment_entered", "segment_exited", "api")):
        raise DefinitionError("trigger", "give `event:`, `segment_entered:`, `segment_exited:` or `api: true`")
    entry = data.get("entry") or {}
    reentry = entry.get("reentry", "after_exit")
    if reentry not in REENTRY:
        raise DefinitionError("entry.reentry", f"one of {', '.join(REENTRY)}")
    min_interval = parse_duration(entry["min_interval"], "entry.min_interval") if "min_interval" in entry else None
    limit = entry.get("limit")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise DefinitionError("entry.limit", "a positive whole number of entries")
    exits = data.get("exit") or []
    if not isinstance(exits, list):
        raise DefinitionError("exit", "a list of exit criteria (`- event: ...` or `- segment_exited: NAME`)")
    exit_events, exit_segments = [], []
    for i, one in enumerate(exits):
        if isinstance(one, dict) and "segment_exited" in one:
            exit_segments.append(str(one["segment_exited"]))
        else:
            exit_events.append(_event_match(one, f"exit[{i}]"))
    goal_raw = data.get("goal")
    goal = _event_match(goal_raw, "goal") if goal_raw else None
    within = None
    if isinstance(goal_raw, dict) and "within" in goal_raw:
        within = parse_duration(goal_raw["within"], "goal.within")
    holdout = data.get("holdout", 0)
    if isinstance(holdout, str) and holdout.endswith("%"):
        holdout = holdout[:-1]
    try:
        holdout_percent = float(holdout)
    except (TypeError, ValueError):
        raise DefinitionError("holdout", f"{holdout!r} is not a percentage") from None
    if not 0 <= holdout_percent < 100:
        raise DefinitionError("holdout", "a percentage from 0 to below 100")
    raw_steps = data.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise DefinitionError("steps", "a non-empty list of steps")
    steps: list[Step] = []
    ids: set[str] = set()
    for i, raw in enumerate(raw_steps):
        step = _step(raw, i, ids)
        ids.add(step.id)
        steps.append(step)
    _check_targets(steps)
    return Journey(
        name=name,
        description=str(data.get("description", "")),
        trigger=dict(trigger),
        trigger_event=trigger_event,
        reentry=reentry,
        min_interval=min_interval,
        entry_limit=limit,
        exit_events=tuple(exit_events),
        exit_segments=tuple(exit_segments),
        goal=goal,
        goal_within=within,
        goal_exits=bool(isinstance(goal_raw, dict) and goal_raw.get("exit", False)),
        holdout_percent=holdout_percent,
        steps=tuple(steps),
        source=data,
    )


def _check_targets(steps: list[Step]) -> None:
    """Every jump names an existing step further down (journeys are acyclic: each step runs once per entry)."""
    position = {s.id: i for i, s in enumerate(steps)}
    for i, step in enumerate(steps):
        targets = [step.next] if step.next else []
        if step.kind == "wait_until":
            targets += [t for t in (step.spec["then"], step.spec["else"]) if t]
        if step.kind in ("branch", "split"):
            targets += [arm["next"] for arm in step.spec["arms"]]
            if step.spec.get("else"):
                targets.append(step.spec["else"])
        for target in targets:
            if target not in position:
                raise DefinitionError(f"steps[{i}] ({step.id})", f"jumps to unknown step {target!r}")
            if position[target] <= i:
                raise DefinitionError(
                    f"steps[{i}] ({step.id})", f"jumps back to {target!r}; journeys only move forward (no loops)"
                )


def load_journey(text: str) -> Journey:
    """Parse YAML (or JSON, which is YAML) text into a Journey, reporting the line of a syntax error."""
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        raise DefinitionError("(yaml)", str(exc.problem), line=mark.line + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise DefinitionError("(yaml)", str(exc)) from None
    try:
        return parse_journey(data)
    except DefinitionError as exc:
        if exc.line is None:
            line = _line_of(yaml.compose(text), exc.path)
            if line is not None:
                raise DefinitionError(exc.path, str(exc).split(": ", 1)[1], line=line) from None
        raise


def _line_of(node: yaml.Node | None, path: str) -> int | None:
    """The 1-based line of the YAML node at PATH (e.g. `steps[2].wait.duration`), or of its nearest parent."""
    best = node.start_mark.line + 1 if node is not None else None
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path.split(" ")[0]):
        if node is None:
            break
        if part.startswith("[") and isinstance(node, yaml.SequenceNode):
            index = int(part[1:-1])
            node = node.value[index] if index < len(node.value) else None
        elif isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if getattr(k, "value", None) == part), None)
        else:
            node = None
        if node is not None:
            best = node.start_mark.line + 1
    return best
