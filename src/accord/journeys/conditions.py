"""Field tests used by journeys: event property filters, branch conditions over traits."""

from __future__ import annotations

from typing import Any, Protocol

from accord.journeys.definition import EventMatch


class _Event(Protocol):
    @property
    def event(self) -> str: ...
    @property
    def channel(self) -> str: ...
    @property
    def properties(self) -> dict[str, Any]: ...


def lookup(data: dict[str, Any], path: str) -> Any:
    """The value at a dotted PATH (`address.city`), or None."""
    value: Any = data
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def holds(field: str, op: str, expected: Any, data: dict[str, Any]) -> bool:
    """Whether `data[field] op expected` holds (missing values fail every test but `exists: false` and `ne`)."""
    actual = lookup(data, field)
    if op == "exists":
        return (actual is not None) == bool(expected)
    if op == "ne":
        return actual != expected
    if actual is None:
        return op == "not_in"
    if op == "eq":
        return bool(actual == expected or (_number(actual) is not None and _number(actual) == _number(expected)))
    if op == "in":
        return actual in expected
    if op == "not_in":
        return actual not in expected
    if op == "contains":
        if isinstance(actual, list):
            return expected in actual
        return str(expected).lower() in str(actual).lower()
    left, right = _number(actual), _number(expected)
    if left is None or right is None:
        left_s, right_s = str(actual), str(expected)  # dates in ISO form compare as text
        return {"gt": left_s > right_s, "gte": left_s >= right_s, "lt": left_s < right_s, "lte": left_s <= right_s}[op]
    return {"gt": left > right, "gte": left >= right, "lt": left < right, "lte": left <= right}[op]


def event_matches(match: EventMatch, event: _Event) -> bool:
    """Whether EVENT has MATCH's name and passes all its filters (`channel` filters the event's channel)."""
    if event.event != match.event:
        return False
    for cond in match.where:
        data = {"channel": event.channel, **event.properties} if cond.field == "channel" else event.properties
        if not holds(cond.field, cond.op, cond.value, data):
            return False
    return True
