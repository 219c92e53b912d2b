"""Event conditions in the profile's local time (weekdays, hours), on DuckDB and chdb, with and without rollups."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from accord.segments.compile import Vocabulary
from accord.segments.engines import QueryEngine
from accord.segments.rules import RuleError, parse_documents

from .conftest import engines_for
from .fixtures import NOW, identify, order

FRIDAY = datetime(2026, 5, 29, tzinfo=UTC)
LONG_AGO = NOW - timedelta(days=100)


def local_rows() -> list[dict[str, Any]]:
    return [
        # Friday 20:00 UTC is Saturday 05:00 in Tokyo: a weekend purchase there
        identify(1, "tokyo", LONG_AGO, timezone="Asia/Tokyo"),
        order(2, "tokyo", FRIDAY + timedelta(hours=20), 1000),
        # Saturday 03:00 UTC is Friday 20:00 in Los Angeles: not a weekend purchase there
        identify(3, "la", LONG_AGO, timezone="America/Los_Angeles"),
        order(4, "la", FRIDAY + timedelta(days=1, hours=3), 2000),
        # no time zone: UTC
        order(5, "utc", FRIDAY + timedelta(days=1, hours=12), 3000),
        # an unknown zone counts as UTC (Sunday 10:00)
        identify(6, "bad", LONG_AGO, timezone="Mars/Olympus_Mons"),
        order(7, "bad", FRIDAY + timedelta(days=2, hours=10), 4000),
        # the latest zone wins: Friday 23:30 UTC is Saturday 00:30 in London (was Tokyo: Saturday 08:30)
        identify(8, "moved", LONG_AGO, timezone="Asia/Tokyo"),
        identify(9, "moved", LONG_AGO + timedelta(days=1), timezone="Europe/London"),
        order(10, "moved", FRIDAY + timedelta(hours=23, minutes=30), 5000),
        # a Friday purchase in UTC, two of them
        order(11, "weekday", FRIDAY + timedelta(hours=9), 100),
        order(12, "weekday", FRIDAY + timedelta(hours=10), 100),
    ]


@pytest.fixture(scope="module")
def local_engines(tmp_path_factory: pytest.TempPathFactory, chdb_session: Any) -> Iterator[dict[str, QueryEngine]]:
    engines = engines_for(local_rows(), tmp_path_factory.mktemp("local"), chdb_session)
    yield engines
    engines["duckdb"].events.close()  # type: ignore[attr-defined]


CASES = [
    ("weekend purchase in local time", "{event: Order Completed, weekdays: [sat, sun]}",
     {"tokyo", "utc", "bad", "moved"}),
    ("full day names", "{event: Order Completed, weekdays: [Saturday, sunday]}", {"tokyo", "utc", "bad", "moved"}),
    ("not on a weekend", "{not: {event: Order Completed, weekdays: [sat, sun]}}", {"la", "weekday"}),
    ("local hours", "{event: Order Completed, hours: [20, 21]}", {"la"}),
    ("local midnight hour", "{event: Order Completed, hours: [0]}", {"moved"}),
    ("weekday and hour", "{event: Order Completed, weekdays: [fri], hours: [9, 10], count: {gte: 2}}",
     {"weekday"}),
    ("with a window", "{event: Order Completed, weekdays: [sat], within: 3d}", {"tokyo", "utc", "moved"}),
    ("sum in local time", "{event: Order Completed, weekdays: [sat, sun], sum: {property: revenue, gte: 40}}",
     {"bad", "moved"}),
    ("last in local time", "{event: Order Completed, weekdays: [fri], last: {after: 2026-05-29T12:00:00Z}}",
     {"la"}),
]  # fmt: skip


@pytest.mark.parametrize(("label", "rule", "expected"), CASES, ids=[c[0] for c in CASES])
def test_local_time_conditions(
    local_engines: dict[str, QueryEngine], label: str, rule: str, expected: set[str]
) -> None:
    seg = parse_documents(f"name: t\nrule: {rule}", "segment")[0]
    found = {}
    for name, engine in local_engines.items():
        query = Vocabulary().compiler(engine.dialect, NOW, rollups=engine.rollups).members_query(seg.rule)
        found[name] = {r[0] for r in engine.rows(query)}
    assert found == dict.fromkeys(local_engines, expected)


def test_declared_traits_count_in_local_time(local_engines: dict[str, QueryEngine]) -> None:
    vocab = Vocabulary()
    for text in (
        "{name: weekend_orders, compute: count, of: {event: Order Completed, weekdays: [sat, sun]}}",
        "{name: weekend_spend, compute: sum, property: revenue, of: {event: Order Completed, weekdays: [sat]}}",
    ):
        trait = parse_documents(text, "trait")[0]
        vocab.traits[trait.name] = trait
    seg = parse_documents("name: t\nrule: {computed: weekend_orders, eq: 1}", "segment")[0]
    for engine in local_engines.values():
        query = vocab.compiler(engine.dialect, NOW, rollups=engine.rollups).members_query(seg.rule)
        assert {r[0] for r in engine.rows(query)} == {"tokyo", "utc", "bad", "moved"}
    with pytest.raises(RuleError, match="weekdays and hours"):
        vocab.compiler("duckdb", NOW).traits_query(["weekend_spend"])


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("{event: Order Completed, weekdays: [funday]}", "line 2, rule.weekdays: 'funday' is not a day of the week"),
        ("{event: Order Completed, weekdays: [saturdays]}", "'saturdays' is not a day of the week"),
        ("{event: Order Completed, hours: [24]}", "hours must be local hours 0-23"),
    ],
)
def test_local_time_errors_say_where(rule: str, message: str) -> None:
    with pytest.raises(RuleError, match=message.replace("[", r"\[")):
        parse_documents(f"name: t\nrule: {rule}", "segment")
