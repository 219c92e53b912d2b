"""The segment and computed-trait rule language: YAML or JSON in, typed definitions out, precise errors."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import yaml

OPERATORS = ("eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "contains", "exists")
COUNT_OPERATORS = ("eq", "ne", "gt", "gte", "lt", "lte")
TIME_OPERATORS = ("within", "older_than", "after", "before")
COMPUTATIONS = ("count", "sum", "avg", "min", "max", "first", "last", "most_frequent", "distinct_count", "days_since")
NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,99}$")
PROPERTY_RE = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$ -]{0,99}(\.[A-Za-z_$][A-Za-z0-9_$ -]{0,99}){0,4}$")
DURATION_RE = re.compile(r"^(\d{1,6})\s*(s|m|h|d|w)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
Value = str | int | float | bool


class RuleError(ValueError):
    """An invalid rule: where (line and field path) and why."""

    def __init__(self, path: str, message: str, line: int | None = None) -> None:
        self.path = path
        self.line = line
        self.reason = message
        where = f"line {line}, " if line is not None else ""
        super().__init__(f"{where}{path or 'definition'}: {message}")

    def as_dict(self) -> dict[str, Any]:
        """The error as data (for the API)."""
        return {"line": self.line, "field": self.path, "reason": self.reason}


# ---- the typed definitions -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """When events count: the last `seconds`, or between two instants (end exclusive)."""

    seconds: int | None = None
    start: datetime | None = None
    end: datetime | None = None


@dataclass(frozen=True)
class PropertyFilter:
    """A condition on one event property (dotted path under `properties`)."""

    path: str
    op: str
    value: Any


@dataclass(frozen=True)
class EventFilter:
    """Which events: name (None = any), channels, property filters, time window."""

    event: str | None
    channels: tuple[str, ...] = ()
    where: tuple[PropertyFilter, ...] = ()
    window: Window | None = None
    months: tuple[int, ...] = ()
    weekdays: tuple[int, ...] = ()  # ISO 1 = Monday .. 7 = Sunday, in the profile's local time
    hours: tuple[int, ...] = ()  # 0-23, in the profile's local time

    @property
    def local(self) -> bool:
        """Whether the filter depends on the profile's time zone (its `timezone` trait, UTC without one)."""
        return bool(self.weekdays or self.hours)


@dataclass(frozen=True)
class TraitCondition:
    """A profile trait (latest identify value) or a computed trait compared with a value."""

    name: str
    op: str
    value: Any
    computed: bool = False


@dataclass(frozen=True)
class EventCondition:
    """Events matching a filter, measured (count, sum of a property, first or last time) and compared."""

    filter: EventFilter
    measure: str  # count | sum | first | last
    op: str
    value: Any
    property: str | None = None


@dataclass(frozen=True)
class SegmentCondition:
    """Membership of another segment."""

    name: str


@dataclass(frozen=True)
class ReachableCondition:
    """Reachable on a consent channel for a purpose: holds an address for it and consent allows contact."""

    channel: str
    purpose: str = "promotions"


@dataclass(frozen=True)
class Group:
    """all / any of several conditions, or not of one."""

    kind: str  # all | any | not
    items: tuple[Condition, ...]


Condition = Group | TraitCondition | EventCondition | SegmentCondition | ReachableCondition


@dataclass(frozen=True)
class SegmentDefinition:
    """A named segment and its rule."""

    name: str
    rule: Condition
    description: str = ""
    source: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class TraitDefinition:
    """A declared computed trait: a computation over matching events."""

    name: str
    compute: str
    filter: EventFilter
    property: str | None = None
    description: str = ""
    source: dict[str, Any] = field(default_factory=dict, compare=False)


# ---- located values: parsed YAML with the line of every mapping key and list item ----------------------------


class LDict(dict[str, Any]):
    """A mapping that remembers the line of each key."""

    line: int | None = None
    lines: dict[str, int]


class LList(list[Any]):
    """A list that remembers the line of each item."""

    line: int | None = None
    lines: list[int]


def _from_node(node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        out = LDict()
        out.line = node.start_mark.line + 1
        out.lines = {}
        for key_node, value_node in node.value:
            key = _from_node(key_node)
            key = str(key) if not isinstance(key, str) else key
            if key in out:
                raise RuleError(key, "the same key appears twice", key_node.start_mark.line + 1)
            out[key] = _from_node(value_node)
            out.lines[key] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        items = LList(_from_node(n) for n in node.value)
        items.line = node.start_mark.line + 1
        items.lines = [n.start_mark.line + 1 for n in node.value]
        return items
    return yaml.SafeLoader(" ").construct_object(node, deep=True)


def load_text(text: str) -> Any:
    """Parse YAML (or JSON, a subset of it) keeping line numbers; a syntax error says where."""
    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        raise RuleError("", f"not valid YAML/JSON: {exc.problem}", mark.line + 1 if mark else None) from exc
    nodes = [n for n in nodes if n is not None]
    if not nodes:
        raise RuleError("", "the file is empty")
    if len(nodes) > 1:
        return [_from_node(n) for n in nodes]
    return _from_node(nodes[0])


def _line(container: Any, key: str | int | None = None) -> int | None:
    if isinstance(container, LDict):
        return container.lines.get(str(key), container.line) if key is not None else container.line
    if isinstance(container, LList):
        if isinstance(key, int) and key < len(container.lines):
            return container.lines[key]
        return container.line
    return None


def _fail(container: Any, path: str, key: str | int | None, message: str) -> RuleError:
    return RuleError(path, message, _line(container, key))


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


# ---- parsing -----------------------------------------------------------------------------------------------


def parse_duration(text: Any, where: tuple[Any, str, str | int | None]) -> int:
    """'60d' -> seconds."""
    match = DURATION_RE.match(str(text).strip()) if isinstance(text, str | int) else None
    if isinstance(text, bool) or match is None:
        raise _fail(where[0], where[1], where[2], f"{text!r} is not a duration; write e.g. 30d, 12h, 2w")
    return int(match.group(1)) * _UNITS[match.group(2)]


def parse_instant(value: Any, where: tuple[Any, str, str | int | None]) -> datetime:
    """A date (midnight UTC) or a date-time with offset (naive means UTC)."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    raise _fail(where[0], where[1], where[2], f"{value!r} is not a date (YYYY-MM-DD) or ISO 8601 date-time")


def _scalar(value: Any, container: Any, path: str, key: str | int) -> Value:
    if isinstance(value, datetime | date):
        return parse_instant(value, (container, path, key)).isoformat()
    if isinstance(value, str | int | float | bool):
        return value
    raise _fail(container, path, key, f"expected a string, number or boolean, got {type(value).__name__}")


def _comparison(data: LDict | dict[str, Any], path: str, allowed: tuple[str, ...], skip: set[str]) -> tuple[str, Any]:
    """Exactly one operator key among ALLOWED; returns (op, value) with the value checked for the operator."""
    ops = [k for k in data if k in allowed]
    unknown = [k for k in data if k not in allowed and k not in skip]
    if unknown:
        key = unknown[0]
        raise _fail(data, _join(path, key), key, f"unknown field {key!r}; expected one of {', '.join(allowed)}")
    if len(ops) != 1:
        found = f"found {', '.join(ops)}" if ops else "found none"
        raise _fail(data, path, None, f"needs exactly one operator of {', '.join(allowed)} ({found})")
    op = ops[0]
    value = data[op]
    where = _join(path, op)
    if op in ("in", "not_in"):
        if not isinstance(value, list) or not value:
            raise _fail(data, where, op, f"{op} needs a non-empty list of values")
        return op, tuple(_scalar(v, value, where, i) for i, v in enumerate(value))
    if op == "exists":
        if not isinstance(value, bool):
            raise _fail(data, where, op, "exists takes true or false")
        return op, value
    if op in ("within", "older_than"):
        return op, parse_duration(value, (data, where, op))
    if op in ("after", "before"):
        return op, parse_instant(value, (data, where, op))
    if value is None or isinstance(value, list | dict):
        raise _fail(data, where, op, f"{op} needs one string, number or boolean")
    scalar = _scalar(value, data, where, op)
    if op in ("gt", "gte", "lt", "lte") and (isinstance(scalar, bool) or not isinstance(scalar, int | float | str)):
        raise _fail(data, where, op, f"{op} compares numbers, dates or text")
    if op == "contains" and not isinstance(scalar, str):
        raise _fail(data, where, op, "contains looks for text inside text")
    if allowed is COUNT_OPERATORS and (isinstance(scalar, bool) or not isinstance(scalar, int | float)):
        raise _fail(data, where, op, f"{op} needs a number here")
    return op, scalar


def _mapping(value: Any, container: Any, path: str, key: str | int | None, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        got = "nothing" if value is None else type(value).__name__
        raise _fail(container, path, key, f"{what} must be a mapping, got {got}")
    return value


def _name(value: Any, container: Any, path: str, key: str | int | None, what: str) -> str:
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise _fail(
            container, path, key, f"{what} {value!r} must be lower-case letters, digits, - or _ (start with a letter)"
        )
    return value


def _property(value: Any, container: Any, path: str, key: str | int | None) -> str:
    if not isinstance(value, str) or not PROPERTY_RE.match(value):
        raise _fail(container, path, key, f"{value!r} is not a property path (letters, digits, _ and dots)")
    return value


def _window(data: dict[str, Any], path: str) -> Window | None:
    has = [k for k in ("within", "between", "after", "before") if k in data]
    if not has:
        return None
    if "within" in data:
        if len(has) > 1:
            raise _fail(data, _join(path, "within"), "within", "use either within or between/after/before, not both")
        return Window(seconds=parse_duration(data["within"], (data, _join(path, "within"), "within")))
    start: datetime | None
    end: datetime | None
    if "between" in data:
        value = data["between"]
        where = _join(path, "between")
        if not isinstance(value, list) or len(value) != 2:
            raise _fail(data, where, "between", "between needs a list of two dates [from, to] (to is exclusive)")
        start = parse_instant(value[0], (value, where, 0))
        end = parse_instant(value[1], (value, where, 1))
    else:
        start = parse_instant(data["after"], (data, _join(path, "after"), "after")) if "after" in data else None
        end = parse_instant(data["before"], (data, _join(path, "before"), "before")) if "before" in data else None
    if start and end and start >= end:
        raise _fail(data, path, has[0], "the window is empty: its start is not before its end")
    return Window(start=start, end=end)


def _event_filter(data: dict[str, Any], path: str) -> EventFilter:
    event = data.get("event")
    if event is not None and (not isinstance(event, str) or not event.strip()):
        raise _fail(data, _join(path, "event"), "event", "event must be an event name (or '*' for any event)")
    channels: tuple[str, ...] = ()
    if "channel" in data:
        raw = data["channel"]
        items = raw if isinstance(raw, list) else [raw]
        if not items or not all(isinstance(c, str) and c for c in items):
            raise _fail(data, _join(path, "channel"), "channel", "channel must be a channel name or a list of them")
        channels = tuple(items)
    where: list[PropertyFilter] = []
    if "where" in data:
        wpath = _join(path, "where")
        filters = _mapping(data["where"], data, wpath, "where", "where")
        for prop, cond in filters.items():
            ppath = _join(wpath, prop)
            _property(prop, filters, ppath, prop)
            if isinstance(cond, dict):
                op, value = _comparison(cond, ppath, OPERATORS, set())
            else:
                op, value = "eq", _scalar(cond, filters, ppath, prop)
            where.append(PropertyFilter(prop, op, value))
    months: tuple[int, ...] = ()
    if "months" in data:
        raw_months = data["months"]
        items = raw_months if isinstance(raw_months, list) else [raw_months]
        if not items or not all(isinstance(m, int) and not isinstance(m, bool) and 1 <= m <= 12 for m in items):
            raise _fail(data, _join(path, "months"), "months", "months must be month numbers 1-12, e.g. [3, 4, 5]")
        months = tuple(sorted(set(items)))
    weekdays = _weekdays(data, path) if "weekdays" in data else ()
    hours: tuple[int, ...] = ()
    if "hours" in data:
        raw_hours = data["hours"]
        items = raw_hours if isinstance(raw_hours, list) else [raw_hours]
        if not items or not all(isinstance(h, int) and not isinstance(h, bool) and 0 <= h <= 23 for h in items):
            raise _fail(data, _join(path, "hours"), "hours", "hours must be local hours 0-23, e.g. [18, 19, 20]")
        hours = tuple(sorted(set(items)))
    name = None if event in (None, "*") else str(event).strip()
    return EventFilter(name, channels, tuple(where), _window(data, path), months, weekdays, hours)


WEEKDAYS = {"mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6, "sun": 7}


def _weekdays(data: dict[str, Any], path: str) -> tuple[int, ...]:
    raw = data["weekdays"]
    items = raw if isinstance(raw, list) else [raw]
    out = set()
    for item in items:
        key = str(item).strip().lower()[:3] if isinstance(item, str) else None
        if key is None or key not in WEEKDAYS or (len(str(item).strip()) > 3 and not _day_name(str(item))):
            raise _fail(data, _join(path, "weekdays"), "weekdays",
                        f"{item!r} is not a day of the week; write e.g. [sat, sun] or [saturday, sunday]")  # fmt: skip
        out.add(WEEKDAYS[key])
    if not out:
        raise _fail(data, _join(path, "weekdays"), "weekdays", "weekdays needs at least one day, e.g. [sat, sun]")
    return tuple(sorted(out))


def _day_name(text: str) -> bool:
    names = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    return text.strip().lower() in names


_EVENT_KEYS = {
    "event", "channel", "where", "within", "between", "after", "before", "months", "weekdays", "hours", "count", "sum",
    "first", "last",
}  # fmt: skip


def _event_condition(data: dict[str, Any], path: str) -> EventCondition:
    unknown = [k for k in data if k not in _EVENT_KEYS]
    if unknown:
        key = unknown[0]
        raise _fail(data, _join(path, key), key, f"unknown field {key!r} in an event condition")
    flt = _event_filter(data, path)
    measures = [k for k in ("count", "sum", "first", "last") if k in data]
    if len(measures) > 1:
        raise _fail(data, _join(path, measures[1]), measures[1], "use one of count, sum, first, last")
    measure = measures[0] if measures else "count"
    if not measures:
        return EventCondition(flt, "count", "gte", 1)
    mpath = _join(path, measure)
    spec = data[measure]
    if measure == "count" and isinstance(spec, int) and not isinstance(spec, bool):
        return EventCondition(flt, "count", "gte", spec)
    spec = _mapping(spec, data, mpath, measure, measure)
    if measure == "count":
        op, value = _comparison(spec, mpath, COUNT_OPERATORS, set())
        return EventCondition(flt, "count", op, value)
    if measure == "sum":
        if "property" not in spec:
            raise _fail(spec, _join(mpath, "property"), None, "sum needs the property to add up (e.g. revenue)")
        prop = _property(spec["property"], spec, _join(mpath, "property"), "property")
        op, value = _comparison(spec, mpath, COUNT_OPERATORS, {"property"})
        return EventCondition(flt, "sum", op, value, prop)
    op, value = _comparison(spec, mpath, TIME_OPERATORS, set())
    return EventCondition(flt, measure, op, value)


def parse_condition(data: Any, path: str = "rule", container: Any = None, key: str | int | None = None) -> Condition:
    """One condition (recursively)."""
    data = _mapping(data, container, path, key, "a condition")
    if not data:
        raise _fail(data, path, None, "a condition cannot be empty")
    kinds = [k for k in ("all", "any", "not", "trait", "computed", "event", "segment", "reachable") if k in data]
    if not kinds:
        first = next(iter(data))
        raise _fail(
            data,
            _join(path, first),
            first,
            f"unknown condition {first!r}; a condition is one of all, any, not, trait, computed, event, segment, "
            "reachable",
        )
    kind = kinds[0]
    if kind in ("all", "any"):
        if len(data) > 1:
            other = next(k for k in data if k != kind)
            raise _fail(data, _join(path, other), other, f"{kind} must be alone in its mapping")
        items = data[kind]
        if not isinstance(items, list) or not items:
            raise _fail(data, _join(path, kind), kind, f"{kind} needs a non-empty list of conditions")
        return Group(
            kind,
            tuple(parse_condition(c, _join(_join(path, kind), i), items, i) for i, c in enumerate(items)),
        )
    if kind == "not":
        if len(data) > 1:
            other = next(k for k in data if k != kind)
            raise _fail(data, _join(path, other), other, "not must be alone in its mapping")
        return Group("not", (parse_condition(data["not"], _join(path, "not"), data, "not"),))
    if kind in ("trait", "computed"):
        name = data[kind]
        if not isinstance(name, str) or not PROPERTY_RE.match(name):
            raise _fail(data, _join(path, kind), kind, f"{kind} needs a trait name, got {name!r}")
        op, value = _comparison(data, path, OPERATORS, {kind})
        return TraitCondition(name, op, value, computed=kind == "computed")
    if kind == "event":
        return _event_condition(data, path)
    if kind == "segment":
        if len(data) > 1:
            other = next(k for k in data if k != kind)
            raise _fail(data, _join(path, other), other, "segment takes only the segment's name")
        return SegmentCondition(_name(data["segment"], data, _join(path, "segment"), "segment", "segment name"))
    channel = data["reachable"]
    if not isinstance(channel, str):
        raise _fail(data, _join(path, "reachable"), "reachable", "reachable needs a channel name (email, sms, ...)")
    for key in data:
        if key not in ("reachable", "purpose"):
            raise _fail(data, _join(path, key), key, f"unknown field {key!r}; reachable takes a channel and a purpose")
    purpose = data.get("purpose", "promotions")
    if not isinstance(purpose, str) or not purpose:
        raise _fail(data, _join(path, "purpose"), "purpose", "purpose must be a consent purpose name")
    return ReachableCondition(channel, purpose)


def _common(data: dict[str, Any], allowed: set[str], what: str) -> tuple[str, str]:
    for key in data:
        if key not in allowed:
            raise _fail(data, key, key, f"unknown field {key!r} in a {what}; expected {', '.join(sorted(allowed))}")
    if "name" not in data:
        raise _fail(data, "name", None, f"a {what} needs a name")
    name = _name(data["name"], data, "name", "name", f"{what} name")
    description = data.get("description") or ""
    if not isinstance(description, str):
        raise _fail(data, "description", "description", "description must be text")
    return name, description


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def parse_segment(data: Any) -> SegmentDefinition:
    """A segment definition from parsed YAML/JSON."""
    data = _mapping(data, None, "", None, "a segment definition")
    name, description = _common(data, {"name", "description", "rule"}, "segment")
    if "rule" not in data:
        raise _fail(data, "rule", None, "a segment needs a rule")
    return SegmentDefinition(name, parse_condition(data["rule"], "rule", data, "rule"), description, _plain(data))


def parse_trait(data: Any) -> TraitDefinition:
    """A computed-trait definition from parsed YAML/JSON."""
    data = _mapping(data, None, "", None, "a trait definition")
    name, description = _common(data, {"name", "description", "compute", "of", "property"}, "trait")
    compute = data.get("compute")
    if compute not in COMPUTATIONS:
        raise _fail(data, "compute", "compute", f"compute must be one of {', '.join(COMPUTATIONS)}, got {compute!r}")
    of = _mapping(data.get("of", {}), data, "of", "of", "of (which events)")
    filter_keys = {"event", "channel", "where", "within", "between", "after", "before", "months", "weekdays", "hours"}
    unknown = [k for k in of if k not in filter_keys]
    if unknown:
        raise _fail(of, _join("of", unknown[0]), unknown[0], f"unknown field {unknown[0]!r} in of")
    prop = None
    if compute in ("count", "days_since"):
        if "property" in data:
            raise _fail(data, "property", "property", f"{compute} takes no property")
    else:
        if "property" not in data:
            raise _fail(data, "property", None, f"{compute} needs the property it is computed over")
        prop = _property(data["property"], data, "property", "property")
    return TraitDefinition(name, str(compute), _event_filter(of, "of"), prop, description, _plain(data))


def parse_documents(text: str, kind: str) -> list[Any]:
    """All definitions in a file: one mapping, a list of mappings, or several YAML documents."""
    loaded = load_text(text)
    items = loaded if isinstance(loaded, list) else [loaded]
    parser = parse_segment if kind == "segment" else parse_trait
    return [parser(item) for item in items]


def window_bounds(window: Window | None, now: datetime) -> tuple[datetime | None, datetime | None]:
    """The absolute [start, end) of a window at NOW."""
    if window is None:
        return None, None
    if window.seconds is not None:
        return now - timedelta(seconds=window.seconds), None
    return window.start, window.end


def has_relative_time(cond: Condition) -> bool:
    """Whether the rule's truth can change with time alone (a rolling window or a time comparison)."""
    if isinstance(cond, Group):
        return any(has_relative_time(c) for c in cond.items)
    if isinstance(cond, EventCondition):
        return (cond.filter.window is not None and cond.filter.window.seconds is not None) or cond.op in (
            "within",
            "older_than",
        )
    if isinstance(cond, TraitCondition):
        return cond.computed
    return isinstance(cond, SegmentCondition)
