"""The rule language: YAML or JSON, the same structure; invalid rules say which line, which field and why."""

from __future__ import annotations

import json

import pytest

from accord.segments.rules import (
    EventCondition,
    Group,
    RuleError,
    SegmentCondition,
    TraitCondition,
    parse_documents,
    parse_segment,
)

STORY = """\
name: poland-denmark-store-regulars
description: bought in a store twice in a year, nothing in 60 days
rule:
  all:
    - trait: country
      in: [PL, DK]
    - event: Order Completed
      channel: store
      within: 365d
      count: {gte: 2}
    - not:
        event: Order Completed
        within: 60d
"""


def test_yaml_and_json_give_the_same_definition() -> None:
    from_yaml = parse_documents(STORY, "segment")[0]
    as_json = json.dumps(from_yaml.source)
    from_json = parse_documents(as_json, "segment")[0]
    from_api = parse_segment(json.loads(as_json))
    assert from_yaml == from_json == from_api
    rule = from_yaml.rule
    assert isinstance(rule, Group) and rule.kind == "all"
    trait, bought, none = rule.items
    assert trait == TraitCondition("country", "in", ("PL", "DK"))
    assert isinstance(bought, EventCondition) and bought.op == "gte" and bought.value == 2
    assert bought.filter.channels == ("store",) and bought.filter.window and bought.filter.window.seconds == 365 * 86400
    assert isinstance(none, Group) and none.kind == "not"


def test_several_definitions_in_one_file() -> None:
    text = "- {name: a, rule: {segment: b}}\n- {name: b, rule: {trait: x, exists: true}}\n"
    first, second = parse_documents(text, "segment")
    assert first.rule == SegmentCondition("b") and second.name == "b"


@pytest.mark.parametrize(
    ("text", "line", "field", "reason"),
    [
        ("name: x\nrule:\n  all:\n    - trait: country\n      equals: PL\n", 5, "rule.all[0].equals", "unknown field"),
        ("name: x\nrule:\n  all:\n    - trait: age\n      gt: [1]\n", 5, "rule.all[0].gt", "one string, number"),
        ("name: x\nrule:\n  event: Order Completed\n  within: 60 days\n", 4, "rule.within", "not a duration"),
        ("name: x\nrule:\n  event: Order Completed\n  count: {gte: many}\n", 4, "rule.count.gte", "needs a number"),
        ("name: x\nrule:\n  any: []\n", 3, "rule.any", "non-empty list"),
        ("name: x\nrule:\n  not:\n    wibble: 1\n", 4, "rule.not.wibble", "unknown condition"),
        ("name: X Y\nrule: {trait: a, exists: true}\n", 1, "name", "lower-case"),
        ("name: x\n", 1, "rule", "needs a rule"),
        ("name: x\nrule:\n  trait: a\n  in: PL\n", 4, "rule.in", "non-empty list"),
        ("name: x\nrule:\n  trait: a\n  eq: 1\n  ne: 2\n", 3, "rule", "exactly one operator"),
        ("name: x\nrule:\n  event: A\n  between: [2025-02-01, 2025-01-01]\n", 4, "rule", "window is empty"),
        ("name: x\nrule:\n  event: A\n  sum: {gte: 3}\n", 4, "rule.sum.property", "property to add up"),
        ("name: x\nrule:\n  event: A\n  last: {soon: 3d}\n", 4, "rule.last.soon", "unknown field"),
        ("name: x\nrule:\n  trait: a\n  eq: 1\n  trait: b\n", 5, "trait", "twice"),
        ("name: x\nrule: [unclosed\n", 3, "", "not valid YAML"),
    ],
)
def test_errors_say_line_field_and_why(text: str, line: int, field: str, reason: str) -> None:
    with pytest.raises(RuleError) as caught:
        parse_documents(text, "segment")
    err = caught.value
    assert (err.line, err.path) == (line, field), str(err)
    assert reason in err.reason
    assert str(err).startswith(f"line {line}, ")


def test_trait_definitions_are_checked() -> None:
    (trait,) = parse_documents("name: t\ncompute: sum\nproperty: revenue\nof: {event: Order Completed}\n", "trait")
    assert trait.compute == "sum" and trait.property == "revenue"
    with pytest.raises(RuleError, match="compute must be one of"):
        parse_documents("name: t\ncompute: median\n", "trait")
    with pytest.raises(RuleError, match="needs the property"):
        parse_documents("name: t\ncompute: max\n", "trait")
    with pytest.raises(RuleError, match="takes no property"):
        parse_documents("name: t\ncompute: count\nproperty: x\n", "trait")
