"""Holdout tests measured on the event store: broadcast groups, journey counts, the global control group."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from accord.analytics import store
from accord.analytics.errors import InvalidInput, NotEnoughData
from accord.analytics.lift import lift_of_members, stratified_lift
from accord.storage.events import EventStore

HOLDOUT = "holdout"


@dataclass(frozen=True)
class HoldoutTest:
    """One randomised holdout, as the domain that ran it reports it.

    GROUPS (profile ids per group label, the control group labelled "holdout") are measured here: conversions in
    [SINCE, SINCE + window). COUNTS (treated n, treated conversions, control n, control conversions) come ready
    from a domain that tracks conversions itself (a journey's goal). CHANNEL is the one channel the treated group
    was reached on, None when several.
    """

    kind: str
    name: str
    channel: str | None
    since: datetime | None = None
    groups: dict[str, list[str]] | None = None
    counts: tuple[int, int, int, int] | None = None


def counts_of(
    events: EventStore, test: HoldoutTest, window: timedelta, conversion: str
) -> tuple[int, int, int, int] | None:
    """(treated n, treated converters, control n, control converters) of a test; None if it has no holdout."""
    if test.counts is not None:
        return test.counts
    if not test.groups or HOLDOUT not in test.groups or test.since is None:
        return None
    converted = store.outcomes(events, test.since, test.since + window, conversion)
    control = test.groups[HOLDOUT]
    treated = [p for label, members in test.groups.items() if label != HOLDOUT for p in members]
    return (
        len(treated),
        sum(1 for p in treated if p in converted),
        len(control),
        sum(1 for p in control if p in converted),
    )


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _measured(test: HoldoutTest) -> bool:
    return test.counts is None and bool(test.groups) and HOLDOUT in (test.groups or {}) and test.since is not None


def counts_of_many(
    events: EventStore, tests: Sequence[HoldoutTest], window: timedelta, conversion: str
) -> list[tuple[int, int, int, int] | None]:
    """counts_of for every test, reading the conversions of all the measured tests' windows in one query (a
    campaign history has hundreds of tests; one query each is most of the time)."""
    measured = [t for t in tests if _measured(t)]
    times: dict[str, list[datetime]] = {}
    if measured:
        start = min(_utc(t.since) for t in measured if t.since is not None)
        end = max(_utc(t.since) for t in measured if t.since is not None) + window
        rows = events.query(
            "SELECT profile_id, timestamp FROM events WHERE profile_id IS NOT NULL AND type = 'track' AND event = ? "
            "AND timestamp >= ? AND timestamp < ? ORDER BY profile_id, timestamp",
            [conversion, start, end],
        )
        for pid, ts in rows:
            times.setdefault(str(pid), []).append(_utc(ts))

    def converted(pid: str, since: datetime, until: datetime) -> bool:
        seen = times.get(pid)
        if not seen:
            return False
        i = bisect_left(seen, since)
        return i < len(seen) and seen[i] < until

    out: list[tuple[int, int, int, int] | None] = []
    for test in tests:
        if not _measured(test):
            out.append(test.counts)
            continue
        assert test.groups is not None and test.since is not None
        since = _utc(test.since)
        until = since + window
        control = test.groups[HOLDOUT]
        treated = [p for label, members in test.groups.items() if label != HOLDOUT for p in members]
        out.append(
            (
                len(treated),
                sum(1 for p in treated if converted(p, since, until)),
                len(control),
                sum(1 for p in control if converted(p, since, until)),
            )
        )
    return out


def lift_by_channel(
    events: EventStore,
    tests: Sequence[HoldoutTest],
    window: timedelta,
    conversion: str,
    confidence: float = 0.95,
) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """Per channel, conversion lift pooled over its holdout tests (stratified_lift); and every test's counts."""
    per_channel: dict[str, list[tuple[int, int, int, int]]] = {}
    listed: list[dict[str, Any]] = []
    for test, counts in zip(tests, counts_of_many(events, tests, window, conversion), strict=True):
        if counts is None:
            continue
        listed.append(
            {
                "kind": test.kind,
                "name": test.name,
                "channel": test.channel,
                "since": test.since.isoformat() if test.since else None,
                "n": counts[0],
                "converted": counts[1],
                "control_n": counts[2],
                "control_converted": counts[3],
            }
        )
        if test.channel:
            per_channel.setdefault(test.channel, []).append(counts)
    out: dict[str, dict[str, Any]] = {}
    for channel, strata in per_channel.items():
        pooled = stratified_lift(strata, confidence)
        if pooled is not None:
            out[channel] = pooled
    return out, listed


def broadcast_lift(
    events: EventStore,
    broadcast: dict[str, Any],
    window: timedelta,
    conversion: str = store.DEFAULT_CONVERSION,
    control: str = HOLDOUT,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Lift of a broadcast's groups (messaging's broadcast_groups: "holdout" and the variants) on conversion and
    revenue in the WINDOW after its send time."""
    groups: dict[str, list[str]] = broadcast.get("groups") or {}
    if control not in groups:
        have = ", ".join(sorted(groups)) or "none"
        raise NotEnoughData(
            f"broadcast {broadcast['name']!r} has no group {control!r} to compare with (groups: {have})"
        )
    since = datetime.fromisoformat(broadcast["sent_at"])
    currency = store.main_currency(events, conversion)
    outcome = store.outcomes(events, since, since + window, conversion, currency)
    doc = lift_of_members(groups, outcome, control, confidence)
    return {
        "broadcast": broadcast["name"],
        "broadcast_id": broadcast["id"],
        "sent_at": broadcast["sent_at"],
        "window_days": window.total_seconds() / 86400,
        "conversion": conversion,
        "currency": currency,
        "value_unit": "minor",
        "channels": broadcast.get("channels", {}),
        **doc,
    }


def global_control_lift(
    events: EventStore,
    in_control: Callable[[str], bool],
    start: datetime,
    end: datetime,
    conversion: str = store.DEFAULT_CONVERSION,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Profiles with any event in [START, END), split by messaging's global control group (IN_CONTROL): conversion
    and revenue of everyone else against the control group, who received no marketing messages."""
    if end <= start:
        raise InvalidInput("end must be after start")
    rows = events.query(
        "SELECT DISTINCT profile_id FROM events WHERE profile_id IS NOT NULL AND timestamp >= ? AND timestamp < ?",
        [start, end],
    )
    groups: dict[str, list[str]] = {"control": [], "messaged": []}
    for (pid,) in rows:
        groups["control" if in_control(str(pid)) else "messaged"].append(str(pid))
    if not groups["control"]:
        raise NotEnoughData("nobody active in this period is in the global control group (is it switched on?)")
    currency = store.main_currency(events, conversion)
    outcome = store.outcomes(events, start, end, conversion, currency)
    doc = lift_of_members(groups, outcome, "control", confidence)
    return {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "conversion": conversion,
        "currency": currency,
        "value_unit": "minor",
        **doc,
    }
