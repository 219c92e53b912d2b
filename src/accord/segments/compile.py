"""Rules to SQL, one definition for every engine: built once, generated per dialect by SQLGlot, values bound.

From the log alone, the query groups the event log by profile: every leaf condition becomes one aggregate column
(or a per-profile sub-query for modes and medians), and the rule becomes a boolean expression over those columns.
With the daily tables (`rollups`), the profiles come from `event_anchors` and each condition that counts events,
sums revenue or asks for a first/last time is a filtered per-profile sub-query over `event_days` (whole days) and
the log (the partial days at a window's edges); traits and local-time filters are filtered sub-queries of the log.
A restricted query (`subset`, DuckDB) reads the events of the touched profiles once into a materialized CTE and
answers every condition from those rows alone, so its cost follows the touched profiles' events, not the daily
tables. Rule values never reach the SQL text: they are named placeholders (`$p1` in DuckDB, `{p1:Type}` in
ClickHouse) with typed values. Dialect-specific functions are written once as `acc_*` pseudo-functions and rewritten per
dialect on the SQLGlot tree.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlglot
from sqlglot import exp

from accord.segments.rules import (
    Condition,
    EventCondition,
    EventFilter,
    Group,
    PropertyFilter,
    ReachableCondition,
    RuleError,
    SegmentCondition,
    SegmentDefinition,
    TraitCondition,
    TraitDefinition,
    Window,
    window_bounds,
)
from accord.storage.events.base import EVENT_COLUMNS

DIALECTS = ("duckdb", "clickhouse")
OTHER_TABLES = frozenset({"event_days", "event_anchors", "event_traits", "staged_events", "ingest_state"})
SUBSET = "touched_events"  # the materialized CTE of a subset query: the events of the profiles in $ids
ASKED = "asked_profiles"  # a subset query's profiles ($ids), each with a small integer (profile_n) to group by
# The events of the asked profiles: the stored ones found by the integer key (hash of the id unless a clash gave it
# another, see storage/events/keys.py; probing the VARCHAR profile_id of every event costs ~5x more), and the staged
# ones (handed
# to the store, not yet written: rows of `staged_events` after the journal seq written in this query's snapshot).
TOUCHED = (
    "SELECT {columns}, a.profile_id, a.profile_n FROM events AS e JOIN (SELECT p.profile_id, p.profile_n, "
    "coalesce(c.profile_key, hash(p.profile_id)) AS profile_key "
    f"FROM {ASKED} AS p LEFT JOIN profile_key_clashes AS c USING (profile_id)) AS a ON e.profile_key = a.profile_key "
    "UNION ALL SELECT {columns}, a.profile_id, a.profile_n FROM staged_events AS e "
    f"JOIN {ASKED} AS a USING (profile_id) WHERE e.journal_seq > (SELECT journal_seq FROM ingest_state)"
)
# the traits of the asked profiles' identify events, stored (event_traits) and staged
ASKED_TRAITS = (
    "SELECT profile_id, timestamp, event_id, traits FROM event_traits WHERE profile_id IN (SELECT unnest($ids)) "
    "UNION ALL SELECT profile_id, timestamp, event_id, json_extract(raw, '$.traits') FROM staged_events "
    "WHERE type = 'identify' AND profile_id IN (SELECT unnest($ids)) "
    "AND journal_seq > (SELECT journal_seq FROM ingest_state)"
)
ASKED_CTE = "SELECT profile_id, row_number() OVER () AS profile_n FROM (SELECT DISTINCT unnest($ids) AS profile_id)"
# the newest anchor identifier of each asked profile, stored or staged
ASKED_ANCHORS = (
    "SELECT profile_id, arg_max(anchor, (last_at, last_event_id)) AS anchor FROM (SELECT profile_id, anchor, "
    "last_at, last_event_id FROM event_anchors WHERE profile_id IN (SELECT unnest($ids)) UNION ALL SELECT "
    "profile_id, anchor, timestamp, event_id FROM staged_events WHERE anchor IS NOT NULL AND profile_id IN "
    "(SELECT unnest($ids)) AND journal_seq > (SELECT journal_seq FROM ingest_state)) AS u GROUP BY profile_id"
)
EVENT_FIELDS = frozenset(EVENT_COLUMNS)
ORDER = "event = 'Order Completed'"
ENGAGED_EVENTS = (
    "Product Viewed",
    "Product Added",
    "Checkout Started",
    "Email Link Clicked",
    "SMS Link Clicked",
    "Push Notification Tapped",
    "Application Opened",
)


@dataclass(frozen=True)
class RfmThresholds:
    """Quintile cut points (four each) of days since last purchase, orders and lifetime revenue."""

    recency: tuple[float, ...]
    frequency: tuple[float, ...]
    monetary: tuple[float, ...]


@dataclass(frozen=True)
class Compiled:
    """SQL for one engine and its bound values."""

    sql: str
    params: dict[str, Any]
    dialect: str
    columns: tuple[str, ...] = ()


@dataclass
class Builtin:
    """A built-in computed trait: kind (number | text | time) and how to build its expression."""

    kind: str
    build: Callable[[Compiler], str]
    description: str


def _q(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class Compiler:
    """Builds one query (members, or computed traits) for one dialect at one instant."""

    def __init__(
        self,
        dialect: str,
        now: datetime,
        segments: Callable[[str], SegmentDefinition | None] = lambda _n: None,
        traits: Callable[[str], TraitDefinition | None] = lambda _n: None,
        rfm: RfmThresholds | None = None,
        rollups: bool = False,
        subset: bool = False,
    ) -> None:
        if dialect not in DIALECTS:
            raise ValueError(f"unknown dialect {dialect!r}; expected one of {DIALECTS}")
        if subset and dialect != "duckdb":
            raise ValueError("subset queries are DuckDB only (ClickHouse prunes event_days by its primary key)")
        self.dialect = dialect
        self.now = now.astimezone(UTC)
        self.segments = segments
        self.traits = traits
        self.rfm = rfm
        # restricted queries read the events of the profiles in $ids once (a materialized CTE) and nothing else
        # (only restricted queries: a full query with SUBSET reads the log alone, without the daily tables)
        self.subset = subset
        self.anchor_rows = rollups  # event_anchors exists: a subset query leaves the anchor to the caller
        # read counts, revenue and first/last times from event_days where possible (not in a subset query: the
        # touched profiles' events answer every condition at once, and the daily tables would be scanned whole)
        self.rollups = rollups and not subset
        self.params: dict[str, Any] = {}
        self._aggs: dict[str, str] = {}
        self._ctes: dict[str, str] = {}
        self._stack: list[str] = []
        self._cache: dict[str, str] = {}

    # ---- building blocks ----------------------------------------------------------------------------------

    def param(self, value: Any) -> str:
        """A placeholder bound to VALUE."""
        if isinstance(value, datetime):
            value = value.astimezone(UTC)
        for name, existing in self.params.items():
            if type(existing) is type(value) and existing == value:
                return f"${name}"
        name = f"p{len(self.params) + 1}"
        self.params[name] = value
        return f"${name}"

    def agg(self, expression: str) -> str:
        """A per-profile aggregate column of the base query."""
        if expression not in self._aggs:
            self._aggs[expression] = f"a{len(self._aggs) + 1}"
        return "agg." + self._aggs[expression]

    def cte(self, select: str) -> str:
        """A per-profile sub-query (profile_id, v) joined to the base; returns its value column."""
        return self.sub(select) + ".v"

    def sub(self, select: str) -> str:
        """A per-profile sub-query (profile_id, ...) left-joined to the base; returns its alias.

        `{scope}` in SELECT becomes the profile restriction of the query."""
        if select not in self._ctes:
            self._ctes[select] = f"m{len(self._ctes) + 1}"
        return self._ctes[select]

    def json_text(self, root: str, path: str) -> str:
        """Text of a JSON value under raw.ROOT.PATH (NULL when absent)."""
        keys = ", ".join(_q(k) for k in [root, *path.split(".")])
        return f"acc_json_text(raw, {keys})"

    def event_predicate(self, flt: EventFilter) -> str:
        """SQL that selects the events of a filter (always a track-like event, never an identify)."""
        parts = self._kind_parts(_names(flt), flt.channels, flt.months, "timestamp")
        for where in flt.where:
            parts.append(self.value_predicate(self.json_text("properties", where.path), where))
        start, end = window_bounds(flt.window, self.now)
        if start is not None:
            parts.append(f"timestamp >= {self.param(start)}")
        if end is not None:
            parts.append(f"timestamp < {self.param(end)}")
        return " AND ".join(parts)

    def _kind_parts(
        self, names: tuple[str, ...] | None, channels: tuple[str, ...], months: tuple[int, ...], time_column: str
    ) -> list[str]:
        # a named event excludes identify calls by itself (they have no event name)
        if names is None:
            parts = ["type <> 'identify'"]
        elif len(names) == 1:
            parts = [f"event = {self.param(names[0])}"]
        else:
            parts = ["(" + " OR ".join(f"event = {self.param(n)}" for n in names) + ")"]
        if channels:
            parts.append("(" + " OR ".join(f"channel = {self.param(c)}" for c in channels) + ")")
        if months:
            parts.append("(" + " OR ".join(f"acc_month({time_column}) = {self.param(m)}" for m in months) + ")")
        return parts

    def daily(
        self,
        names: tuple[str, ...] | None,
        channels: tuple[str, ...] = (),
        months: tuple[int, ...] = (),
        window: Window | None = None,
    ) -> str:
        """Alias of a sub-query (profile_id, n, r, lo, hi): number of matching events, sum of revenue_minor, first
        and last time, from event_days for the whole UTC days inside the window and from the events for the
        partial days at its edges (exactly what the events alone give)."""
        start, end = window_bounds(window, self.now)
        day_from = _ceil_day(start) if start is not None else None
        day_to = _floor_day(end) if end is not None else None
        raw: list[tuple[datetime | None, datetime | None]] = []
        whole: tuple[datetime | None, datetime | None] | None = (day_from, day_to)
        if start is not None and end is not None and (day_from is None or day_to is None or day_from >= day_to):
            raw, whole = [(start, end)], None
        else:
            if start is not None and day_from is not None and start < day_from:
                raw.append((start, day_from))
            if end is not None and day_to is not None and day_to < end:
                raw.append((day_to, end))
        selects = []
        if whole is not None:
            parts = self._kind_parts(names, channels, months, "day")
            if whole[0] is not None:
                parts.append(f"day >= {self.param(whole[0])}")
            if whole[1] is not None:
                parts.append(f"day < {self.param(whole[1])}")
            selects.append(
                "SELECT profile_id, events AS n, revenue_minor AS r, first_at AS lo, last_at AS hi FROM event_days "
                "WHERE {scope} AND " + " AND ".join(parts)
            )
        for lo, hi in raw:
            parts = self._kind_parts(names, channels, months, "timestamp")
            if lo is not None:
                parts.append(f"timestamp >= {self.param(lo)}")
            if hi is not None:
                parts.append(f"timestamp < {self.param(hi)}")
            selects.append(
                "SELECT profile_id, CAST(1 AS BIGINT) AS n, revenue_minor AS r, timestamp AS lo, timestamp AS hi "
                "FROM events WHERE {scope} AND " + " AND ".join(parts)
            )
        return self.sub(
            "SELECT profile_id, sum(n) AS n, sum(r) AS r, min(lo) AS lo, max(hi) AS hi FROM ("
            + " UNION ALL ".join(selects)
            + ") AS u GROUP BY profile_id"
        )

    def zones(self) -> str:
        """SQL of a sub-query (profile_id, v): each profile's time zone, its latest `timezone` trait when that is
        a known IANA name (profiles without one, or with an unknown name, are left out: they count as UTC)."""
        text, source = self.identify_traits("timezone")
        if self.dialect == "duckdb":
            known = "SELECT name FROM pg_timezone_names()"
        else:
            known = "SELECT time_zone FROM system.time_zones"
        return (
            f"SELECT profile_id, v FROM (SELECT profile_id, arg_max({text}, (timestamp, event_id)) AS v FROM {source} "
            f"AND {text} IS NOT NULL GROUP BY profile_id) AS zt WHERE v IN ({known})"
        )

    def local(self, flt: EventFilter, sum_of: str | None = None) -> str:
        """Alias of a sub-query (profile_id, n, r, lo, hi[, s]) over the events of FLT whose local weekday / hour
        (in the profile's time zone) matches; s is the sum of the property SUM_OF."""
        zone = "coalesce(z.v, 'UTC')"
        parts = [self.event_predicate(flt)]
        if flt.weekdays:
            parts.append("(" + " OR ".join(f"acc_local_dow(timestamp, {zone}) = {self.param(d)}"
                                           for d in flt.weekdays) + ")")  # fmt: skip
        if flt.hours:
            parts.append("(" + " OR ".join(f"acc_local_hour(timestamp, {zone}) = {self.param(h)}"
                                           for h in flt.hours) + ")")  # fmt: skip
        total = f", sum(acc_num({self.json_text('properties', sum_of)})) AS s" if sum_of else ""
        return self.sub(
            "SELECT e.profile_id, count(*) AS n, sum(revenue_minor) AS r, min(timestamp) AS lo, max(timestamp) AS hi"
            f"{total} FROM (SELECT * FROM events WHERE {{scope}}) AS e LEFT JOIN ({self.zones()}) AS z "
            f"ON z.profile_id = e.profile_id WHERE {' AND '.join(parts)} GROUP BY e.profile_id"
        )

    def measure(self, flt: EventFilter, what: str) -> str:
        """count | revenue | first | last of the events of FLT, per profile (from event_days when it can)."""
        if flt.local:
            alias = self.local(flt)
            return {"count": f"coalesce({alias}.n, 0)", "revenue": f"coalesce({alias}.r, 0)",
                    "first": f"{alias}.lo", "last": f"{alias}.hi"}[what]  # fmt: skip
        if self.rollups and not flt.where:
            alias = self.daily(_names(flt), flt.channels, flt.months, flt.window)
            return {"count": f"coalesce({alias}.n, 0)", "revenue": f"coalesce({alias}.r, 0)",
                    "first": f"{alias}.lo", "last": f"{alias}.hi"}[what]  # fmt: skip
        where = self.event_predicate(flt)
        if what == "count":
            return self.agg(f"count(*) FILTER (WHERE {where})")
        if what == "revenue":
            return self.agg(f"coalesce(sum(revenue_minor) FILTER (WHERE {where}), 0)")
        return self.agg(f"{'min' if what == 'first' else 'max'}(acc_nullable(timestamp)) FILTER (WHERE {where})")

    def value_predicate(self, text_expr: str, cond: PropertyFilter | TraitCondition, kind: str = "text") -> str:
        """Compare a text (or number/time, by KIND) expression with the condition's value."""
        op, value = cond.op, cond.value
        if op == "exists":
            return f"({text_expr} IS {'NOT ' if value else ''}NULL)"
        if op == "contains":
            return f"coalesce(contains(CAST({text_expr} AS VARCHAR), {self.param(value)}), FALSE)"
        values = value if op in ("in", "not_in") else (value,)
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        if kind == "time":
            left = text_expr
            rendered = [self.param(self._instant(v, cond)) for v in values]
        elif numeric:
            left = text_expr if kind == "number" else f"acc_num({text_expr})"
            rendered = [self.param(float(v)) for v in values]
        else:
            left = text_expr if kind == "text" else f"CAST({text_expr} AS VARCHAR)"
            rendered = [self.param(_text(v)) for v in values]
        if op in ("in", "not_in"):
            inner = " OR ".join(f"{left} = {r}" for r in rendered)
            test = f"({inner})" if op == "in" else f"NOT ({inner})"
            return f"coalesce({test}, FALSE)"
        sql_op = {"eq": "=", "ne": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[op]
        return f"coalesce({left} {sql_op} {rendered[0]}, FALSE)"

    @staticmethod
    def _instant(value: Any, cond: Any) -> datetime:
        if isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
                return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed
            except ValueError:
                pass
        raise RuleError(f"computed.{cond.name}", f"{value!r} is not a date or date-time to compare a time with")

    def days_since(self, time_expr: str) -> str:
        """Whole days between a time and the evaluation instant."""
        return f"floor((acc_epoch({self.param(self.now)}) - acc_epoch({time_expr})) / 86400)"

    # ---- conditions ---------------------------------------------------------------------------------------

    def condition(self, cond: Condition) -> str:
        """A boolean SQL expression (never NULL) over the base query's columns."""
        if isinstance(cond, Group):
            if cond.kind == "not":
                return f"NOT ({self.condition(cond.items[0])})"
            joiner = " AND " if cond.kind == "all" else " OR "
            return "(" + joiner.join(self.condition(c) for c in cond.items) + ")"
        if isinstance(cond, TraitCondition):
            if cond.computed:
                kind, expr = self.computed(cond.name)
                return self.value_predicate(expr, cond, kind)
            return self.value_predicate(self.trait(cond.name), cond)
        if isinstance(cond, EventCondition):
            return self.event_condition(cond)
        if isinstance(cond, SegmentCondition):
            return self.segment(cond.name)
        if isinstance(cond, ReachableCondition):
            return self.reachable(cond)
        raise TypeError(f"unknown condition {cond!r}")

    def identify_traits(self, path: str) -> tuple[str, str]:
        """(text of the trait PATH, FROM clause of the identify events' traits with `{scope}`): `event_traits`
        when the derived tables exist (stored and, in a subset query, staged), else the identify events of the
        log. The JSON test sits in the aggregate's filter: it runs after the profile restriction, not before."""
        if not self.anchor_rows:
            return self.json_text("traits", path), "events WHERE {scope} AND type = 'identify'"
        keys = ", ".join(_q(k) for k in path.split("."))
        text = f"acc_json_text(traits, {keys})"
        if not self.subset:
            return text, "event_traits WHERE {scope}"
        return text, f"({ASKED_TRAITS}) AS it WHERE {{scope}}"

    def trait(self, name: str) -> str:
        """The latest identify value of a trait, as text (NULL when never set)."""
        if self.rollups or self.subset:  # only identify events are read (the big per-profile scan stays out of it)
            text, source = self.identify_traits(name)
            return self.cte(
                f"SELECT profile_id, arg_max({text}, (timestamp, event_id)) FILTER (WHERE {text} IS NOT NULL) AS v "
                f"FROM {source} GROUP BY profile_id"
            )
        text = self.json_text("traits", name)
        return self.agg(
            f"arg_max({text}, (timestamp, event_id)) FILTER (WHERE type = 'identify' AND {text} IS NOT NULL)"
        )

    def event_condition(self, cond: EventCondition) -> str:
        if cond.measure == "count":
            return self._compare_number(self.measure(cond.filter, "count"), cond.op, cond.value)
        if cond.measure == "sum" and cond.filter.local:
            column = f"coalesce({self.local(cond.filter, cond.property or '')}.s, 0)"
            return self._compare_number(column, cond.op, cond.value)
        if cond.measure == "sum":
            where = self.event_predicate(cond.filter)
            prop = self.json_text("properties", cond.property or "")
            column = self.agg(f"coalesce(sum(acc_num({prop})) FILTER (WHERE {where}), 0)")
            return self._compare_number(column, cond.op, cond.value)
        column = self.measure(cond.filter, cond.measure)
        if cond.op == "within":
            return f"coalesce({column} >= {self.param(self._ago(cond.value))}, FALSE)"
        if cond.op == "older_than":
            return f"coalesce({column} < {self.param(self._ago(cond.value))}, FALSE)"
        if cond.op == "after":
            return f"coalesce({column} >= {self.param(cond.value)}, FALSE)"
        return f"coalesce({column} < {self.param(cond.value)}, FALSE)"

    def reachable(self, cond: ReachableCondition) -> str:
        """Holds an identifier that reaches the channel, and the newest consent event allows contact (consent's
        rule: opted out never; transactional or opted in (unexpired) yes; pending no; otherwise only for
        soft-opt-in purposes)."""
        from accord.consent.service import CONSENT_CHANNELS, DEFAULT_PURPOSES, REACH

        if cond.channel not in CONSENT_CHANNELS:
            raise RuleError("reachable", f"unknown channel {cond.channel!r}; known: {', '.join(CONSENT_CHANNELS)}")
        purpose = DEFAULT_PURPOSES.get(cond.purpose)
        if purpose is None:
            raise RuleError("purpose", f"unknown purpose {cond.purpose!r}; known: {', '.join(DEFAULT_PURPOSES)}")
        has = " OR ".join(f"acc_has_type(identifiers, {self.param(t + ':')})" for t in REACH[cond.channel])
        address = self.agg(f"count(*) FILTER (WHERE {has})")
        where = (
            f"event = 'Consent Changed' AND {self.json_text('properties', 'consent_channel')} = "
            f"{self.param(cond.channel)} AND {self.json_text('properties', 'purpose')} = {self.param(cond.purpose)}"
        )
        status = self.agg(
            f"arg_max({self.json_text('properties', 'status')}, (timestamp, event_id)) FILTER (WHERE {where})"
        )
        expires = self.agg(
            f"arg_max({self.json_text('properties', 'expires_at')}, (timestamp, event_id)) FILTER (WHERE {where})"
        )
        live = f"({expires} IS NULL OR {expires} > {self.param(self.now.isoformat())})"
        effective = f"CASE WHEN {status} IS NULL OR NOT {live} THEN 'unknown' ELSE {status} END"
        if purpose.transactional:
            allowed = f"{effective} <> 'opted_out'"
        elif purpose.opt_in_required:
            allowed = f"{effective} = 'opted_in'"
        else:
            allowed = f"{effective} NOT IN ('opted_out', 'pending')"
        return f"coalesce({address} > 0 AND {allowed}, FALSE)"

    def _ago(self, seconds: int) -> datetime:
        return self.now - timedelta(seconds=seconds)

    def _compare_number(self, column: str, op: str, value: Any) -> str:
        sql_op = {"eq": "=", "ne": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[op]
        return f"coalesce({column} {sql_op} {self.param(float(value))}, FALSE)"

    def segment(self, name: str) -> str:
        if name in self._stack:
            raise RuleError("segment", f"segments refer to each other in a cycle: {' -> '.join([*self._stack, name])}")
        definition = self.segments(name)
        if definition is None:
            raise RuleError("segment", f"there is no segment named {name!r}")
        self._stack.append(name)
        try:
            return self.condition(definition.rule)
        finally:
            self._stack.pop()

    # ---- computed traits ----------------------------------------------------------------------------------

    def computed(self, name: str) -> tuple[str, str]:
        """(kind, expression) of a computed trait, built-in or declared."""
        builtin = BUILTINS.get(name)
        if builtin is not None:
            return builtin.kind, builtin.build(self)
        if name in self._stack:
            raise RuleError("computed", f"computed traits refer to each other in a cycle at {name!r}")
        definition = self.traits(name)
        if definition is None:
            raise RuleError("computed", f"there is no computed trait named {name!r} (built-ins: {', '.join(BUILTINS)})")
        return declared_kind(definition), self.declared(definition)

    def declared(self, d: TraitDefinition) -> str:
        if d.compute == "count":
            return self.measure(d.filter, "count")
        if d.compute == "days_since":
            return self.days_since(self.measure(d.filter, "last"))
        if d.filter.local:
            raise RuleError("of", f"weekdays and hours (local time) work with count and days_since, not {d.compute}")
        where = self.event_predicate(d.filter)
        value = self.json_text("properties", d.property) if d.property else "NULL"
        if d.compute in ("sum", "avg", "min", "max"):
            return self.agg(f"{d.compute}(acc_num({value})) FILTER (WHERE {where})")
        if d.compute == "first":
            return self.agg(f"arg_min({value}, (timestamp, event_id)) FILTER (WHERE {where} AND {value} IS NOT NULL)")
        if d.compute == "last":
            return self.agg(f"arg_max({value}, (timestamp, event_id)) FILTER (WHERE {where} AND {value} IS NOT NULL)")
        if d.compute == "distinct_count":
            return self.agg(f"count(DISTINCT {value}) FILTER (WHERE {where})")
        return self.mode(value, where)

    def mode(self, value: str, where: str) -> str:
        """The most frequent value per profile (ties: the smallest value)."""
        return self.cte(
            "SELECT profile_id, v FROM (SELECT profile_id, v, row_number() OVER (PARTITION BY profile_id "
            "ORDER BY n DESC, v) AS rn FROM (SELECT profile_id, " + value + " AS v, count(*) AS n FROM events "
            "WHERE {scope} AND " + where + " AND " + value + " IS NOT NULL GROUP BY profile_id, v) AS counted) "
            "AS ranked WHERE rn = 1"
        )

    # ---- whole queries ------------------------------------------------------------------------------------

    def _from(self, restrict: bool, anchor: bool = False) -> tuple[str, str, str]:
        """(WITH clause, FROM clause, the base alias): one row per profile that has events (with its newest anchor
        identifier as base.anchor when ANCHOR)."""
        scope = "profile_id IS NOT NULL"
        if restrict and not self.subset:  # a subset query restricts once, where it reads the events
            scope += " AND profile_id IN (SELECT unnest($ids))"
        aggs = "".join(f", {expr} AS {name}" for expr, name in self._aggs.items())
        ctes, joins = [], ""
        if self.rollups:
            base = "base"
            newest = ", arg_max(anchor, (last_at, last_event_id)) AS anchor" if anchor else ""
            ctes.append(f"base AS (SELECT profile_id{newest} FROM event_anchors WHERE {scope} GROUP BY profile_id)")
            if self._aggs:
                ctes.append(f"agg AS (SELECT profile_id{aggs} FROM events WHERE {scope} GROUP BY profile_id)")
                joins += " LEFT JOIN agg ON agg.profile_id = base.profile_id"
        else:
            base = "agg"
            ctes.append(f"agg AS (SELECT profile_id{aggs} FROM events WHERE {scope} GROUP BY profile_id)")
        for select, name in self._ctes.items():
            ctes.append(f"{name} AS ({select.replace('{scope}', scope)})")
            joins += f" LEFT JOIN {name} ON {name}.profile_id = {base}.profile_id"
        return "WITH " + ", ".join(ctes), f"FROM {base}{joins}", base

    def members_query(self, rule: Condition, restrict: bool = False) -> Compiled:
        """profile_id of every member (of the profiles in $ids when RESTRICT)."""
        predicate = self.condition(rule)
        head, source, base = self._from(restrict)
        return self.finish(f"{head} SELECT {base}.profile_id {source} WHERE {predicate}", restrict)

    def memberships_query(self, rules: list[Condition], restrict: bool = False) -> Compiled:
        """profile_id, its newest anchor and one boolean per rule: every segment in one query."""
        predicates = [self.condition(r) for r in rules]
        if self.rollups:
            anchor = "base.anchor"
        elif self.subset and self.anchor_rows and restrict:
            # not read here (a wide column of every touched profile): the caller looks up those whose membership
            # changed (service._anchors)
            anchor = "NULL"
        else:
            anchor = self.agg("arg_max(anchor, (timestamp, event_id)) FILTER (WHERE anchor IS NOT NULL)")
        head, source, base = self._from(restrict, anchor=True)
        cols = "".join(f", {p} AS s{i}" for i, p in enumerate(predicates))
        # restricted: every touched profile comes back (with its anchor, to address exits); full: members only
        where = "" if restrict else " WHERE " + (" OR ".join(f"({p})" for p in predicates) or "FALSE")
        return self.finish(f"{head} SELECT {base}.profile_id, {anchor}{cols} {source}{where}", restrict)

    def count_query(self, rule: Condition) -> Compiled:
        """The number of members."""
        predicate = self.condition(rule)
        head, source, _base = self._from(False)
        return self.finish(f"{head} SELECT count(*) {source} WHERE {predicate}", False)

    def traits_query(self, names: list[str], restrict: bool = True) -> Compiled:
        """profile_id and the value of each computed trait in NAMES."""
        exprs = [self.computed(n)[1] for n in names]
        head, source, base = self._from(restrict)
        cols = "".join(f", {e} AS {_ident(n)}" for n, e in zip(names, exprs, strict=True))
        compiled = self.finish(f"{head} SELECT {base}.profile_id{cols} {source} ORDER BY {base}.profile_id", restrict)
        return Compiled(compiled.sql, compiled.params, compiled.dialect, ("profile_id", *names))

    def finish(self, sql: str, restrict: bool) -> Compiled:
        """Parse the DuckDB-flavoured text with SQLGlot, rewrite pseudo-functions, generate for the dialect."""
        params = dict(self.params)
        if restrict:
            params["ids"] = []
        types = tuple((k, _ch_type(v)) for k, v in params.items())
        return Compiled(_generate(sql, self.dialect, types, restrict and self.subset), params, self.dialect)


@functools.lru_cache(maxsize=512)
def _generate(sql: str, dialect: str, types: tuple[tuple[str, str], ...], subset: bool = False) -> str:
    """SQLGlot: parse the DuckDB-flavoured text, rewrite the pseudo-functions, generate for DIALECT.

    Values are not in SQL (only their placeholders and types), so the result is cached: re-evaluating a segment at
    another instant or for other profiles does not parse again. SUBSET: every read of `events` reads instead the
    events of the profiles in $ids, fetched once (only the columns the query uses) into a materialized CTE.
    """
    kinds = dict(types)
    tree = sqlglot.parse_one(sql, dialect="duckdb")
    for _ in range(8):  # pseudo-functions nest (acc_num(acc_json_text(...))): rewrite until none is left
        before = tree.sql(dialect="duckdb")
        tree = tree.transform(lambda node: _rewrite(node, dialect, kinds))
        if tree.sql(dialect="duckdb") == before:
            break
    if subset:
        _read_subset(tree)
    return tree.sql(dialect=dialect)


def _read_subset(tree: exp.Expr) -> None:
    """Point every `events` of TREE (a WITH query) at SUBSET, a first CTE holding the events of the profiles in $ids
    (the event columns the query names; all of them when it selects `*`), stored and staged."""
    star = any(isinstance(s.parent, exp.Select) for s in tree.find_all(exp.Star))
    aliases = {cte.alias for cte in tree.find_all(exp.CTE)}  # a column of a CTE's result is not an event column
    named = {c.name for c in tree.find_all(exp.Column) if c.table not in aliases and not _reads_other_table(c)}
    used = EVENT_FIELDS if star else EVENT_FIELDS & named | {"profile_id"}
    for table in tree.find_all(exp.Table):
        if table.name == "events" and not table.db:
            table.set("this", exp.to_identifier(SUBSET))
    columns = ", ".join(f"e.{c}" for c in EVENT_COLUMNS if c in used and c != "profile_id")  # the store's order
    _group_by_number(tree)
    asked = sqlglot.parse_one(ASKED_CTE, dialect="duckdb")
    select = sqlglot.parse_one(TOUCHED.format(columns=columns), dialect="duckdb")
    ctes = [
        exp.CTE(this=asked, alias=exp.TableAlias(this=exp.to_identifier(ASKED)), materialized=True),
        exp.CTE(this=select, alias=exp.TableAlias(this=exp.to_identifier(SUBSET)), materialized=True),
    ]
    with_ = tree.args.get("with_")
    if not isinstance(with_, exp.With):
        raise ValueError("a subset query starts with WITH")
    with_.set("expressions", [*ctes, *with_.expressions])


def _reads_other_table(column: exp.Column) -> bool:
    """Whether COLUMN belongs to a SELECT over a derived table, the staged events or a sub-query (whose own SELECT
    names the event columns it reads): not an event column to fetch."""
    select = column.find_ancestor(exp.Select)
    source = select.args.get("from_") if select is not None else None
    if not isinstance(source, exp.From):
        return False
    if isinstance(source.this, exp.Subquery) and not select.args.get("joins"):  # type: ignore[union-attr]
        return True
    return isinstance(source.this, exp.Table) and source.this.name in OTHER_TABLES


def _group_by_number(tree: exp.Expr) -> None:
    """Group the touched events by the asked profile's integer (profile_n) instead of the VARCHAR profile_id
    (DuckDB groups ~400,000 events of 20,000 profiles in ~0.1 s by an integer, ~0.4 s by the text), taking the
    profile_id along."""
    for select in list(tree.find_all(exp.Select)):
        source = select.args.get("from_")
        group = select.args.get("group")
        if not isinstance(source, exp.From) or select.args.get("joins") or not isinstance(group, exp.Group):
            continue
        if not isinstance(source.this, exp.Table) or source.this.name != SUBSET:
            continue
        keys = [k for k in group.expressions if isinstance(k, exp.Column) and k.name == "profile_id" and not k.table]
        bare = [c for c in select.expressions if isinstance(c, exp.Column) and c.name == "profile_id" and not c.table]
        if len(keys) != 1 or len(bare) != 1:
            continue
        keys[0].replace(exp.column("profile_n"))
        bare[0].replace(exp.alias_(exp.func("any_value", exp.column("profile_id")), "profile_id"))


def _names(flt: EventFilter) -> tuple[str, ...] | None:
    return None if flt.event is None else (flt.event,)


def _floor_day(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _ceil_day(at: datetime) -> datetime:
    floor = _floor_day(at)
    return floor if floor == at else floor + timedelta(days=1)


def _ident(name: str) -> str:
    return '"' + name.replace('"', "") + '"'


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _ch_type(value: Any) -> str:
    if isinstance(value, bool):
        return "Bool"
    if isinstance(value, int):
        return "Int64"
    if isinstance(value, float):
        return "Float64"
    if isinstance(value, datetime):
        return "DateTime64(6, 'UTC')"
    if isinstance(value, list):
        return "Array(String)"
    return "String"


def _fn(name: str, *args: exp.Expression) -> exp.Expression:
    return exp.Anonymous(this=name, expressions=list(args))


def _rewrite(node: exp.Expression, dialect: str, kinds: dict[str, str]) -> exp.Expression:
    if isinstance(node, exp.Placeholder) and dialect == "clickhouse" and node.args.get("kind") is None:
        kind = exp.DataType.build(kinds.get(node.name, "String"), dialect="clickhouse")
        return exp.Placeholder(this=node.name, kind=kind)
    if not isinstance(node, exp.Anonymous) or not str(node.this).lower().startswith("acc_"):
        return node
    name = str(node.this).lower()
    args = list(node.expressions)
    if name == "acc_json_text":
        root, keys = args[0], args[1:]
        if dialect == "duckdb":
            path = "$" + "".join('."' + k.name.replace('"', "") + '"' for k in keys)
            return _fn("json_extract_string", root, exp.Literal.string(path))
        extract = _fn("JSONExtractString", root, *keys)
        is_null = exp.EQ(
            this=_fn("JSONType", root.copy(), *[k.copy() for k in keys]), expression=exp.Literal.string("Null")
        )
        return exp.If(this=is_null, true=exp.Null(), false=extract)
    if name == "acc_has_type":
        if dialect == "duckdb":
            fn = "len(list_filter(x0, x -> starts_with(x, x1))) > 0"
        else:
            fn = "arrayExists(x -> startsWith(x, x1), x0)"
        tree = sqlglot.parse_one(fn, dialect=dialect)
        mapping = {"x0": args[0], "x1": args[1]}
        return tree.transform(
            lambda n: mapping[n.name].copy() if isinstance(n, exp.Column) and n.name in mapping else n
        )
    if name in ("acc_local_dow", "acc_local_hour"):
        if dialect == "duckdb":
            local = _fn("timezone", args[1], args[0])
            return _fn("isodow" if name == "acc_local_dow" else "hour", local)
        # formatDateTime takes a per-row zone (allow_nonconst_timezone_arguments); toDayOfWeek/toHour do not
        pattern = exp.Literal.string("%u" if name == "acc_local_dow" else "%H")
        return _fn("toUInt8", _fn("formatDateTime", args[0], pattern, args[1]))
    if name == "acc_month":
        return _fn("month" if dialect == "duckdb" else "toMonth", args[0])
    if name == "acc_nullable":
        return args[0] if dialect == "duckdb" else _fn("toNullable", args[0])
    if name == "acc_num":
        if dialect == "duckdb":
            return exp.TryCast(this=args[0], to=exp.DataType.build("DOUBLE"))
        return _fn("toFloat64OrNull", args[0])
    if name == "acc_epoch":
        if dialect == "duckdb":
            return _fn("epoch", args[0])
        return exp.Div(this=_fn("toUnixTimestamp64Micro", args[0]), expression=exp.Literal.number(1_000_000))
    if name == "acc_median":
        if dialect == "duckdb":
            return _fn("quantile_cont", args[0], exp.Literal.number(0.5))
        low = exp.Anonymous(this="quantileExactLow(0.5)", expressions=[args[0]])
        high = exp.Anonymous(this="quantileExactHigh(0.5)", expressions=[args[0].copy()])
        return exp.Div(this=exp.Paren(this=exp.Add(this=low, expression=high)), expression=exp.Literal.number(2))
    if name == "acc_categories":
        if dialect == "duckdb":
            return _fn("json_extract_string", args[0], exp.Literal.string("$.properties.products[*].category"))
        raw = _fn(
            "JSONExtractArrayRaw",
            _fn("assumeNotNull", args[0]),
            exp.Literal.string("properties"),
            exp.Literal.string("products"),
        )
        return sqlglot.parse_one(  # type: ignore[return-value]
            "arrayMap(x -> JSONExtractString(x, 'category'), " + raw.sql("clickhouse") + ")", dialect="clickhouse"
        )
    raise ValueError(f"unknown pseudo-function {name}")


# ---- built-in computed traits ----------------------------------------------------------------------------------


ORDERS = EventFilter("Order Completed")


def _orders(c: Compiler) -> str:
    return c.measure(ORDERS, "count")


def _revenue(c: Compiler) -> str:
    return c.measure(ORDERS, "revenue")


def _last_purchase(c: Compiler) -> str:
    return c.measure(ORDERS, "last")


def _first_purchase(c: Compiler) -> str:
    return c.measure(ORDERS, "first")


def _aov(c: Compiler) -> str:
    return f"CASE WHEN {_orders(c)} > 0 THEN floor({_revenue(c)} / {_orders(c)}) END"


def _days_since_purchase(c: Compiler) -> str:
    return c.days_since(_last_purchase(c))


def _favourite_channel(c: Compiler) -> str:
    return c.mode("channel", f"type <> 'identify' AND {ORDER}")


def _favourite_store(c: Compiler) -> str:
    return c.mode("store_id", f"{ORDER} AND channel = 'store'")


def _favourite_category(c: Compiler) -> str:
    return c.cte(
        "SELECT profile_id, v FROM (SELECT profile_id, v, row_number() OVER (PARTITION BY profile_id "
        "ORDER BY n DESC, v) AS rn FROM (SELECT profile_id, v, count(*) AS n FROM (SELECT profile_id, "
        f"unnest(acc_categories(raw)) AS v FROM events WHERE {{scope}} AND {ORDER}) AS items WHERE v IS NOT NULL "
        "GROUP BY profile_id, v) AS counted) AS ranked WHERE rn = 1"
    )


def _median_gap(c: Compiler) -> str:
    return c.cte(
        "SELECT profile_id, acc_median(gap) AS v FROM (SELECT profile_id, (acc_epoch(timestamp) - "
        "acc_epoch(lag(acc_nullable(timestamp)) OVER (PARTITION BY profile_id ORDER BY timestamp, event_id))) "
        "/ 86400 AS gap "
        f"FROM events WHERE {{scope}} AND {ORDER}) AS gaps WHERE gap IS NOT NULL GROUP BY profile_id"
    )


def _score(c: Compiler, value: str, cuts: tuple[float, ...], descending: bool) -> str:
    if not cuts:
        return "NULL"
    above = " + ".join(f"CASE WHEN {value} > {c.param(float(cut))} THEN 1 ELSE 0 END" for cut in cuts)
    score = f"({len(cuts) + 1} - ({above}))" if descending else f"(1 + {above})"
    return f"CASE WHEN {_orders(c)} > 0 THEN {score} END"


def _rfm_r(c: Compiler) -> str:
    return _score(c, _days_since_purchase(c), c.rfm.recency if c.rfm else (), descending=True)


def _rfm_f(c: Compiler) -> str:
    return _score(c, _orders(c), c.rfm.frequency if c.rfm else (), descending=False)


def _rfm_m(c: Compiler) -> str:
    return _score(c, _revenue(c), c.rfm.monetary if c.rfm else (), descending=False)


def _rfm_group(c: Compiler) -> str:
    r, f = _rfm_r(c), _rfm_f(c)
    return (
        f"CASE WHEN {r} IS NULL THEN NULL WHEN {r} >= 4 AND {f} >= 4 THEN 'champions' "
        f"WHEN {r} >= 3 AND {f} >= 3 THEN 'loyal' WHEN {r} >= 4 AND {f} <= 1 THEN 'new' "
        f"WHEN {r} >= 3 THEN 'promising' WHEN {f} >= 4 THEN 'cannot_lose' WHEN {f} >= 2 THEN 'at_risk' "
        f"WHEN {r} = 2 THEN 'about_to_sleep' ELSE 'hibernating' END"
    )


def _lifecycle(c: Compiler) -> str:
    days, orders = _days_since_purchase(c), _orders(c)
    first = c.days_since(_first_purchase(c))
    return (
        f"CASE WHEN {orders} = 0 THEN NULL WHEN {orders} = 1 AND {first} <= 30 THEN 'new' "
        f"WHEN {days} <= 90 THEN 'active' WHEN {days} <= 180 THEN 'at_risk' WHEN {days} <= 365 THEN 'lapsed' "
        "ELSE 'churned' END"
    )


def _funnel(c: Compiler) -> str:
    orders = _orders(c)
    if c.rollups:
        engaged = f"coalesce({c.daily(ENGAGED_EVENTS)}.n, 0)"
    else:
        engaged = c.agg("count(*) FILTER (WHERE " + " OR ".join(f"event = {_q(e)}" for e in ENGAGED_EVENTS) + ")")
    return (
        f"CASE WHEN {orders} >= 5 THEN 'loyal' WHEN {orders} >= 2 THEN 'repeat' WHEN {orders} = 1 THEN 'purchased' "
        f"WHEN {engaged} > 0 THEN 'engaged' ELSE 'aware' END"
    )


BUILTINS: dict[str, Builtin] = {
    "lifetime_revenue": Builtin("number", _revenue, "Sum of order revenue, minor units of the order currency"),
    "orders": Builtin("number", _orders, "Number of completed orders (any channel)"),
    "average_order_value": Builtin("number", _aov, "Lifetime revenue / orders, minor units"),
    "first_purchase_at": Builtin("time", _first_purchase, "Time of the first order"),
    "last_purchase_at": Builtin("time", _last_purchase, "Time of the latest order"),
    "days_since_last_purchase": Builtin("number", _days_since_purchase, "Whole days since the latest order"),
    "favourite_channel": Builtin("text", _favourite_channel, "Channel of most orders"),
    "favourite_store": Builtin("text", _favourite_store, "Store of most in-store orders"),
    "favourite_category": Builtin("text", _favourite_category, "Most bought product category"),
    "median_days_between_orders": Builtin("number", _median_gap, "Median gap between consecutive orders, days"),
    "rfm_recency": Builtin("number", _rfm_r, "Recency quintile score 1-5 (5 = most recent)"),
    "rfm_frequency": Builtin("number", _rfm_f, "Frequency quintile score 1-5"),
    "rfm_monetary": Builtin("number", _rfm_m, "Monetary quintile score 1-5"),
    "rfm_group": Builtin("text", _rfm_group, "Named RFM group (champions, loyal, at_risk, hibernating, ...)"),
    "lifecycle_stage": Builtin("text", _lifecycle, "new, active, at_risk, lapsed, churned (none before an order)"),
    "funnel_stage": Builtin("text", _funnel, "aware, engaged, purchased, repeat, loyal"),
}


def declared_kind(d: TraitDefinition) -> str:
    """number, text or time."""
    if d.compute in ("count", "sum", "avg", "min", "max", "distinct_count", "days_since"):
        return "number"
    return "text"


@dataclass
class Vocabulary:
    """What a rule may refer to: saved segments and declared traits."""

    segments: dict[str, SegmentDefinition] = field(default_factory=dict)
    traits: dict[str, TraitDefinition] = field(default_factory=dict)

    def compiler(
        self,
        dialect: str,
        now: datetime,
        rfm: RfmThresholds | None = None,
        rollups: bool = False,
        subset: bool = False,
    ) -> Compiler:
        """A compiler that resolves names in this vocabulary (reading event_days where it can when ROLLUPS; reading
        the touched profiles' events once in restricted queries when SUBSET)."""
        return Compiler(dialect, now, self.segments.get, self.traits.get, rfm, rollups, subset)


def check(rule: Condition, vocabulary: Vocabulary, now: datetime) -> None:
    """Raise RuleError if the rule refers to unknown or cyclic names (compiles it for DuckDB)."""
    vocabulary.compiler("duckdb", now).members_query(rule)
