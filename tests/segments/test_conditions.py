"""Every condition kind, compiled for DuckDB and for ClickHouse (chdb), gives the same, expected members."""

from __future__ import annotations

import pytest

from accord.segments.compile import Compiled, RfmThresholds, Vocabulary
from accord.segments.engines import QueryEngine
from accord.segments.rules import RuleError, parse_documents

from .fixtures import NOW


def members(engine: QueryEngine, rule_yaml: str, vocab: Vocabulary | None = None) -> set[str]:
    seg = parse_documents("name: t\nrule:\n" + rule_yaml, "segment")[0]
    query = (vocab or Vocabulary()).compiler(engine.dialect, NOW, rollups=engine.rollups).members_query(seg.rule)
    return {r[0] for r in engine.rows(query)}


CASES = [
    ("trait eq", "  trait: country\n  eq: PL", {"ann", "eve"}),
    ("trait ne (missing trait is not a match)", "  trait: country\n  ne: PL", {"bob", "cid", "dan", "gus"}),
    ("trait in", "  trait: country\n  in: [PL, DK]", {"ann", "bob", "eve", "dan", "gus"}),
    ("trait not_in", "  trait: country\n  not_in: [PL, DK]", {"cid"}),
    ("trait gt (numbers)", "  trait: age\n  gt: 30", {"ann", "bob"}),
    ("trait gte", "  trait: age\n  gte: 34", {"ann", "bob"}),
    ("trait lt", "  trait: age\n  lt: 34", {"eve"}),
    ("trait lte", "  trait: age\n  lte: 34", {"ann", "eve"}),
    ("trait contains", "  trait: email\n  contains: example.net", {"bob"}),
    ("trait exists", "  trait: email\n  exists: true", {"ann", "bob"}),
    ("trait not exists", "  trait: email\n  exists: false", {"cid", "dan", "eve", "fay", "gus"}),
    ("trait boolean", "  trait: vip\n  eq: true", {"ann"}),
    ("event default count>=1", "  event: Product Added", {"dan", "eve"}),
    ("event count with channel and window",
     "  event: Order Completed\n  channel: store\n  within: 365d\n  count: {gte: 2}", {"ann", "cid", "gus"}),
    ("event channel list", "  event: Order Completed\n  channel: [web, app]", {"bob", "eve"}),
    ("event count eq", "  event: Order Completed\n  count: {eq: 5}", {"gus"}),
    ("event count lt (zero counts)", "  event: Order Completed\n  count: {lt: 1}", {"dan", "fay"}),
    ("event sum of a property", "  event: Order Completed\n  sum: {property: revenue, gte: 200}", {"ann"}),
    ("event where property filter", "  event: Product Viewed\n  where: {category: Shoes, price: {gt: 100}}", {"dan"}),
    ("event where in", "  event: Product Added\n  where: {category: {in: [Toys, Games]}}", {"eve"}),
    ("event between dates", "  event: Order Completed\n  between: [2025-04-01, 2025-05-01]", {"eve"}),
    ("event any name", "  event: '*'\n  within: 1d\n  count: {gte: 1}", {"fay"}),
    ("event any name 2 days", "  event: '*'\n  within: 2d", {"fay", "eve"}),
    ("first occurrence within", "  event: Order Completed\n  first:\n    within: 300d", {"ann", "bob", "cid", "gus"}),
    ("last occurrence older than", "  event: Order Completed\n  last:\n    older_than: 60d", {"ann", "cid", "eve"}),
    ("last occurrence after a date", "  event: Order Completed\n  last: {after: 2026-05-01}", {"bob"}),
    ("last occurrence before a date", "  event: Order Completed\n  last: {before: 2025-06-01}", {"eve"}),
    ("event months (spring buyers)", "  event: Order Completed\n  months: [3, 4, 5]", {"ann", "bob", "eve", "gus"}),
    ("reachable by sms for promotions (address + opt-in, newest wins)", "  reachable: sms", {"ann"}),
    ("reachable by sms for a transactional purpose", "  reachable: sms\n  purpose: order_updates",
     {"ann", "bob", "cid"}),  # bob opted out of promotions only
    ("not", "  not:\n    event: Order Completed", {"dan", "fay"}),
    ("any", "  any:\n    - trait: country\n      eq: GB\n    - event: Product Viewed", {"cid", "dan"}),
    ("computed built-in", "  computed: orders\n  gte: 3", {"ann", "gus"}),
    ("computed revenue", "  computed: lifetime_revenue\n  gt: 20000", {"ann"}),
    ("computed favourite store", "  computed: favourite_store\n  eq: S3", {"gus"}),
    ("computed favourite channel", "  computed: favourite_channel\n  eq: web", {"eve"}),
    ("computed favourite category", "  computed: favourite_category\n  eq: Bags", set()),
    ("computed time", "  computed: last_purchase_at\n  gte: 2026-04-01", {"bob", "gus"}),
    ("computed lifecycle", "  computed: lifecycle_stage\n  eq: active", {"ann", "bob", "gus"}),
    ("computed funnel", "  computed: funnel_stage\n  in: [engaged]", {"dan"}),
    ("computed funnel loyal", "  computed: funnel_stage\n  eq: loyal", {"gus"}),
    ("computed median gap", "  computed: median_days_between_orders\n  eq: 50", {"gus"}),
    ("story: PL or DK, 2+ store orders in a year, none in 60 days",
     "  all:\n    - trait: country\n      in: [PL, DK]\n    - event: Order Completed\n      channel: store\n"
     "      within: 365d\n      count: {gte: 2}\n    - not:\n        event: Order Completed\n        within: 60d",
     {"ann"}),
]  # fmt: skip


@pytest.mark.parametrize(("label", "rule", "expected"), CASES, ids=[c[0] for c in CASES])
def test_condition(engine: QueryEngine, label: str, rule: str, expected: set[str]) -> None:
    assert members(engine, rule) == expected


def test_segment_membership_and_declared_traits(engine: QueryEngine) -> None:
    vocab = Vocabulary()
    vocab.segments.update(
        {s.name: s for s in parse_documents("name: danes\nrule: {trait: country, eq: DK}", "segment")}
    )
    vocab.traits.update(
        {
            t.name: t
            for t in parse_documents(
                "- {name: store_orders, compute: count, of: {event: Order Completed, channel: store}}\n"
                "- {name: top_viewed, compute: most_frequent, property: category, of: {event: Product Viewed}}\n"
                "- {name: max_price, compute: max, property: price, of: {event: '*'}}\n"
                "- {name: last_category, compute: last, property: category, of: {event: '*'}}\n"
                "- {name: first_category, compute: first, property: category, of: {event: '*'}}\n"
                "- {name: categories, compute: distinct_count, property: category, of: {event: '*'}}\n"
                "- {name: days_since_view, compute: days_since, of: {event: Product Viewed}}\n"
                "- {name: avg_revenue, compute: avg, property: revenue, of: {event: Order Completed}}\n"
                "- {name: sum_revenue, compute: sum, property: revenue, of: {event: Order Completed}}\n"
                "- {name: min_revenue, compute: min, property: revenue, of: {event: Order Completed}}\n",
                "trait",
            )
        }
    )
    assert members(engine, "  segment: danes", vocab) == {"bob", "dan", "gus"}
    assert members(engine, "  not: {segment: danes}", vocab) == {"ann", "cid", "eve", "fay"}
    assert members(engine, "  computed: store_orders\n  gte: 2", vocab) == {"ann", "cid", "gus"}
    assert members(engine, "  computed: top_viewed\n  eq: Bags", vocab) == {"dan"}  # tie: smallest value
    assert members(engine, "  computed: max_price\n  gt: 100", vocab) == {"dan"}
    assert members(engine, "  computed: last_category\n  eq: Toys", vocab) == {"eve"}
    assert members(engine, "  computed: first_category\n  eq: Shoes", vocab) == {"dan"}
    assert members(engine, "  computed: categories\n  eq: 2", vocab) == {"dan"}
    assert members(engine, "  computed: days_since_view\n  lte: 3", vocab) == {"dan"}
    assert members(engine, "  computed: avg_revenue\n  eq: 99", vocab) == {"eve"}
    assert members(engine, "  computed: sum_revenue\n  eq: 75", vocab) == {"bob"}
    assert members(engine, "  computed: min_revenue\n  eq: 10", vocab) == {"gus"}


def test_all_computed_traits_are_identical_on_both_dialects(scenario_engines: dict[str, QueryEngine]) -> None:
    rfm = RfmThresholds((10.0, 40.0, 90.0, 180.0), (1.0, 2.0, 3.0, 4.0), (5000.0, 10000.0, 15000.0, 20000.0))
    results = {}
    for dialect, engine in scenario_engines.items():
        query = Vocabulary().compiler(engine.dialect, NOW, rfm, engine.rollups).traits_query(
            ["lifetime_revenue", "orders", "average_order_value", "last_purchase_at", "days_since_last_purchase",
             "favourite_channel", "favourite_store", "favourite_category", "median_days_between_orders",
             "rfm_recency", "rfm_frequency", "rfm_monetary", "rfm_group", "lifecycle_stage", "funnel_stage"],
            restrict=False,
        )  # fmt: skip
        results[dialect] = [tuple(_norm(v) for v in row) for row in engine.rows(query)]
    assert results["duckdb"] == results["clickhouse"] == results["duckdb-rollups"] == results["clickhouse-rollups"]
    ann = next(r for r in results["duckdb"] if r[0] == "ann")
    assert ann[1:4] == (25000, 3, 8333)
    assert ann[6:9] == ("store", "S1", "Shoes")
    gus = next(r for r in results["duckdb"] if r[0] == "gus")
    assert gus[10:] == (4, 5, 3, "champions", "active", "loyal")


def _norm(value: object) -> object:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value


def test_values_are_bound_never_spliced(engine: QueryEngine) -> None:
    evil = "PL' OR 1=1 --"
    seg = parse_documents(f'name: t\nrule: {{trait: country, eq: "{evil}"}}', "segment")[0]
    query = Vocabulary().compiler(engine.dialect, NOW, rollups=engine.rollups).members_query(seg.rule)
    assert evil not in query.sql and evil in query.params.values()
    assert engine.rows(query) == []


def test_reachability_refuses_unknown_channels_and_purposes() -> None:
    for rule, message in (
        ("{reachable: fax}", "unknown channel 'fax'"),
        ("{reachable: sms, purpose: x}", "unknown purpose"),
    ):
        seg = parse_documents(f"name: t\nrule: {rule}", "segment")[0]
        with pytest.raises(RuleError, match=message):
            Vocabulary().compiler("duckdb", NOW).members_query(seg.rule)


def test_unknown_segment_and_cycles_are_refused() -> None:
    vocab = Vocabulary()
    for text in ("name: a\nrule: {segment: b}", "name: b\nrule: {segment: a}"):
        seg = parse_documents(text, "segment")[0]
        vocab.segments[seg.name] = seg
    with pytest.raises(RuleError, match="cycle"):
        vocab.compiler("duckdb", NOW).members_query(vocab.segments["a"].rule)
    seg = parse_documents("name: c\nrule: {segment: nope}", "segment")[0]
    with pytest.raises(RuleError, match="no segment named 'nope'"):
        vocab.compiler("clickhouse", NOW).members_query(seg.rule)


def test_restricted_query_evaluates_only_the_given_profiles(engine: QueryEngine) -> None:
    seg = parse_documents("name: t\nrule: {trait: country, in: [PL, DK]}", "segment")[0]
    query = Vocabulary().compiler(engine.dialect, NOW, rollups=engine.rollups).members_query(seg.rule, restrict=True)
    query = Compiled(query.sql, {**query.params, "ids": ["ann", "cid", "zed"]}, query.dialect)
    assert {r[0] for r in engine.rows(query)} == {"ann"}


def test_all_segments_in_one_scan_equal_one_query_each(engine: QueryEngine) -> None:
    rules = [parse_documents("name: t\nrule:\n" + rule, "segment")[0].rule for _label, rule, _expected in CASES]
    query = Vocabulary().compiler(engine.dialect, NOW, rollups=engine.rollups).memberships_query(rules)
    found: list[set[str]] = [set() for _ in rules]
    for row in engine.rows(query):
        assert row[1] == f"user_id:{row[0]}"  # the anchor, to address timeline events
        for i, flag in enumerate(row[2:]):
            if flag:
                found[i].add(row[0])
    assert found == [expected for _label, _rule, expected in CASES]


def test_subset_queries_read_only_the_touched_profiles_events(engine: QueryEngine) -> None:
    """DuckDB's incremental queries (subset: the touched profiles' events read once into a materialized CTE) give,
    for every condition kind and computed trait, the members of the full query among the given profiles."""
    if engine.dialect != "duckdb":
        with pytest.raises(ValueError, match="DuckDB only"):
            Vocabulary().compiler(engine.dialect, NOW, subset=True)
        return
    rules = [parse_documents("name: t\nrule:\n" + rule, "segment")[0].rule for _label, rule, _expected in CASES]
    everyone = ["ann", "bob", "cid", "dan", "eve", "fay", "gus", "nobody"]
    for (label, _rule, expected), rule in zip(CASES, rules, strict=True):
        query = Vocabulary().compiler("duckdb", NOW, rollups=engine.rollups, subset=True).members_query(rule, True)
        assert query.sql.startswith("WITH asked_profiles AS MATERIALIZED"), query.sql
        assert "touched_events AS MATERIALIZED (SELECT" in query.sql and "profile_key" in query.sql
        assert "event_days" not in query.sql and "event_anchors" not in query.sql
        for ids in (everyone, ["ann", "gus", "nobody"], []):
            found = {r[0] for r in engine.rows(Compiled(query.sql, {**query.params, "ids": ids}, "duckdb"))}
            assert found == expected & set(ids), label
    query = Vocabulary().compiler("duckdb", NOW, rollups=engine.rollups, subset=True).memberships_query(rules, True)
    rows = engine.rows(Compiled(query.sql, {**query.params, "ids": everyone}, "duckdb"))
    assert sorted(r[0] for r in rows) == everyone[:-1]  # every touched profile with events comes back
    for row in rows:  # with the daily tables the anchor is looked up for the changed profiles only
        assert row[1] == (None if engine.rollups else f"user_id:{row[0]}")
        assert {i for i, flag in enumerate(row[2:]) if flag} == {i for i, c in enumerate(CASES) if row[0] in c[2]}
