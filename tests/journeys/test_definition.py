"""The journey language: valid definitions parse; invalid ones say where (line) and why."""

from __future__ import annotations

import pytest

from accord.journeys.definition import DefinitionError, load_journey

CART = """
name: abandoned-cart
trigger:
  event: Cart Abandoned
  where: {value: {gte: 10}}
exit:
  - event: Order Completed
goal: {event: Order Completed, within: 7d}
holdout: 10%
steps:
  - id: wait
    wait: 1h
  - id: remind
    send: {template: cart-reminder, channels: [push, sms, email]}
  - id: bought
    wait_until: {event: Order Completed, timeout: 1d}
    then: done
    else: coupon
  - id: coupon
    send: {template: cart-coupon, channels: [best]}
  - id: done
    exit: true
"""


def test_a_complete_definition_parses() -> None:
    journey = load_journey(CART)
    assert journey.name == "abandoned-cart"
    assert journey.holdout_percent == 10
    assert [s.kind for s in journey.steps] == ["wait", "send", "wait_until", "send", "exit"]
    assert journey.following("wait") == "remind"
    assert journey.goal is not None and journey.goal_within is not None and journey.goal_within.days == 7


@pytest.mark.parametrize(
    ("bad", "where", "why"),
    [
        (CART.replace("wait: 1h", "wait: one hour"), "line 12", "not a duration"),
        (CART.replace("then: done", "then: nowhere"), "steps[2]", "unknown step 'nowhere'"),
        (CART.replace("else: coupon", "else: wait"), "steps[2]", "jumps back"),
        (CART.replace("holdout: 10%", "holdout: 120"), "holdout", "below 100"),
        (CART.replace("{gte: 10}", "{between: 10}"), "trigger.where.value", "unknown operator 'between'"),
        (CART.replace("  - id: coupon\n", "  - id: remind\n"), "steps[3].id", "used twice"),
        (CART.replace("name: abandoned-cart\n", ""), "name", "letters"),
        ("name: x\ntrigger: {event: A}\nsteps: [{id: a, send: {}}]", "steps[0].send", "template"),
        ("name: x\ntrigger: {event: A}\nsteps:\n  - {id: a, wait: 1h\n", "line 5", "expected"),
    ],
)
def test_invalid_definitions_say_where_and_why(bad: str, where: str, why: str) -> None:
    with pytest.raises(DefinitionError) as info:
        load_journey(bad)
    assert where in str(info.value) and why in str(info.value), str(info.value)
