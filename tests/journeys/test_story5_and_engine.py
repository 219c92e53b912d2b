"""Journeys over the real pipeline: events in through the journal, instances advanced by the engine."""

from __future__ import annotations

import base64
import json
from datetime import datetime

import pytest
import sqlalchemy as sa

from accord.collect.intake import intake_import, parse_request
from accord.collect.sources import add_source
from accord.journeys import service as journeys
from accord.journeys import tables as t
from accord.platform import Platform
from accord.profiles import service as profiles
from tests.journeys.conftest import Clock, RecordingSender

CART = """
name: abandoned-cart
trigger: {event: Cart Abandoned}
exit:
  - event: Order Completed
goal: {event: Order Completed, within: 7d}
steps:
  - id: wait
    wait: 20h
  - id: remind
    send: {template: cart-reminder, channels: [push, sms, email]}
  - id: later
    wait: 1d
  - id: coupon
    send: {template: cart-coupon, channels: [email]}
"""


def ingest(platform: Platform, key: str, messages: list[dict], at: datetime, imported: bool = False) -> None:
    """Collect MESSAGES over the HTTP intake (or as a file import: POS receipts may carry no user id)."""
    for m in messages:
        m.setdefault("timestamp", at.isoformat())
    if imported:
        source = platform.lookup_source(key)
        assert source is not None
        intake = intake_import(messages, source, at)
    else:
        body = json.dumps({"batch": messages}).encode()
        auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
        intake = parse_request(body, None, auth, "batch", platform.lookup_source, at)
    assert not intake.rejects, intake.rejects
    platform.journal.append(intake.journal_batch())
    assert platform.processor.drain()


def cart(user: str, n: int) -> dict:
    return {
        "type": "track",
        "event": "Cart Abandoned",
        "userId": user,
        "messageId": f"cart-{user}-{n}",
        "context": {"traits": {"email": f"{user}@example.com"}},
        "properties": {"sku": "SKU-1", "value": 40},
    }


def test_story5_a_store_purchase_ends_the_abandoned_cart_journey_before_the_reminder(
    platform: Platform, clock: Clock, sender: RecordingSender
) -> None:
    web = add_source(platform.state, "web", "web")
    pos = add_source(platform.state, "pos", "store")
    journeys.apply(platform.state, CART, activate=True)

    ingest(platform, web.write_key, [cart("ann", 1), cart("bob", 1)], clock.now)
    platform.journeys.run_until_idle()
    assert journeys.stats(platform.state, "abandoned-cart")["active"] == 2

    clock.advance(hours=14)  # the next morning Ann buys the item at a till, identified by the email on her receipt
    receipt = {
        "type": "track",
        "event": "Order Completed",
        "messageId": "pos-1",
        "context": {"externalIds": [{"type": "loyalty_card", "id": "CARD-77"}], "traits": {"email": "ann@example.com"}},
        "properties": {"order_id": "R1", "revenue": 40, "currency": "PLN", "products": [{"sku": "SKU-1"}]},
    }
    ingest(platform, pos.write_key, [receipt], clock.now, imported=True)
    clock.advance(hours=7)  # past the 20 h wait
    platform.journeys.run_until_idle()

    ann = profiles.resolve(platform.state, platform.rules, "email:ann@example.com")
    bob = profiles.resolve(platform.state, platform.rules, "email:bob@example.com")
    assert [(r.profile_id, r.template) for r in sender.sent] == [(bob, "cart-reminder")]
    stats = journeys.stats(platform.state, "abandoned-cart")
    assert stats["exited"] == {"exit event: Order Completed (store)": 1}
    assert stats["converted"] == 1 and stats["active"] == 1
    assert ann is not None

    clock.advance(days=1, hours=1)
    for _ in range(3):  # running again sends nothing twice
        platform.journeys.run_until_idle()
    assert [r.template for r in sender.sent] == ["cart-reminder", "cart-coupon"]
    assert len({r.idempotency_key for r in sender.sent}) == 2
    final = journeys.stats(platform.state, "abandoned-cart")
    assert final["completed"] == 1 and final["active"] == 0
    steps = {s["step"]: s["passed"] for s in final["steps"]}
    assert steps == {"wait": 2, "remind": 1, "later": 1, "coupon": 1}


WAIT_UNTIL = """
name: welcome
trigger: {event: Signed Up}
entry: {reentry: never}
steps:
  - id: hello
    send: {template: welcome, channels: [email]}
  - id: app
    wait_until: {event: App Installed, timeout: 3d}
    then: thanks
    else: nudge
  - id: nudge
    send: {template: get-the-app, channels: [sms, email]}
    next: end
  - id: thanks
    update_profile: {traits: {onboarded: true}}
  - id: end
    exit: true
"""


def test_wait_until_takes_the_event_branch_or_the_timeout_branch_and_reentry_never(
    platform: Platform, clock: Clock, sender: RecordingSender
) -> None:
    app = add_source(platform.state, "app", "app")
    journeys.apply(platform.state, WAIT_UNTIL, activate=True)
    signed = [{"type": "track", "event": "Signed Up", "userId": u, "messageId": f"s-{u}"} for u in ("ann", "bob")]
    ingest(platform, app.write_key, signed, clock.now)
    platform.journeys.run_until_idle()
    clock.advance(hours=5)
    ingest(
        platform,
        app.write_key,
        [{"type": "track", "event": "App Installed", "userId": "ann", "messageId": "i1"}],
        clock.now,
    )
    platform.journeys.run_until_idle()
    clock.advance(days=3)
    platform.journeys.run_until_idle()
    assert platform.processor.drain()  # the profile update journeys emitted lands on the timeline
    ann = profiles.resolve(platform.state, platform.rules, "user_id:ann")
    assert [(r.template) for r in sender.sent] == ["welcome", "welcome", "get-the-app"]
    view = profiles.profile_view(platform.state, platform.events, ann or "")
    assert view is not None and view["traits"]["onboarded"]["value"] is True
    stats = journeys.stats(platform.state, "welcome")
    outcomes = {s["step"]: s["outcomes"] for s in stats["steps"]}
    assert outcomes["app"] == {"event arrived": 1, "timed out": 1}
    # reentry: never — signing up again does not start the journey again
    ingest(
        platform,
        app.write_key,
        [{"type": "track", "event": "Signed Up", "userId": "ann", "messageId": "s2"}],
        clock.now,
    )
    assert journeys.stats(platform.state, "welcome")["entered"] == 2


SPLIT = """
name: spring
trigger: {api: true}
holdout: 20
goal: {event: Order Completed, within: 30d}
steps:
  - id: ab
    split:
      - {percent: 50, next: a, name: A}
      - {percent: 50, next: b, name: B}
  - id: a
    send: {template: spring-a, channels: [email]}
    next: vip
  - id: b
    send: {template: spring-b, channels: [email]}
  - id: vip
    branch:
      - {if: {tier: gold}, next: call}
    else: done
  - id: call
    task: {queue: call_center, title: Call a gold customer about spring}
  - id: done
    goal: reached
"""


def test_split_holdout_and_branch_are_deterministic_and_counted(
    platform: Platform, clock: Clock, sender: RecordingSender
) -> None:
    journeys.apply(platform.state, SPLIT, activate=True)
    pids = [f"P{i:05d}" for i in range(2000)]
    ids = journeys.trigger(platform.journeys, "spring", pids, {"campaign": "spring"})
    assert len(ids) == 2000
    platform.journeys.traits = lambda ps: {p: {"tier": "gold" if p.endswith("7") else "silver"} for p in ps}
    platform.journeys.run_until_idle()
    stats = journeys.stats(platform.state, "spring")
    held = stats["conversion"]["holdout"]["entered"]
    assert 320 < held < 480  # ~20 % held out, deterministic per profile
    a = sum(1 for r in sender.sent if r.template == "spring-a")
    b = sum(1 for r in sender.sent if r.template == "spring-b")
    assert a + b == 2000 - held and 0.4 < a / (a + b) < 0.6
    assert stats["completed"] == 2000
    tasks = journeys.tasks(platform.state, queue="call_center")
    assert len(tasks) == 200 and {task["title"] for task in tasks} == {"Call a gold customer about spring"}
    # the same profiles entered again land in the same holdout group
    journeys.apply(platform.state, SPLIT.replace("spring", "spring2", 1), activate=True)
    with platform.state.connect() as conn:
        first = set(
            conn.execute(sa.select(t.journey_instances.c.profile_id).where(t.journey_instances.c.holdout)).scalars()
        )
    assert len(first) == held


def test_versions_pause_resume_and_stop(platform: Platform, clock: Clock, sender: RecordingSender) -> None:
    first = journeys.apply(platform.state, CART, activate=True)
    assert first["version"] == 1 and first["changed"]
    assert not journeys.apply(platform.state, CART)["changed"]  # same text: no new version
    journeys.trigger(platform.journeys, "abandoned-cart", ["P1"])
    platform.journeys.run_until_idle()
    second = journeys.apply(platform.state, CART.replace("wait: 20h", "wait: 2h"))
    assert second["version"] == 2 and second["status"] == "active"
    journeys.trigger(platform.journeys, "abandoned-cart", ["P2"])
    platform.journeys.run_until_idle()
    journeys.set_status(platform.state, "abandoned-cart", "paused")
    clock.advance(hours=3)
    platform.journeys.run_until_idle()
    assert sender.sent == []  # paused: nothing advances
    journeys.set_status(platform.state, "abandoned-cart", "active")
    platform.journeys.run_until_idle()
    assert [r.profile_id for r in sender.sent] == ["P2"]  # v2's 2 h wait is over, P1 is still on v1's 20 h
    journeys.set_status(platform.state, "abandoned-cart", "stopped")
    assert journeys.stats(platform.state, "abandoned-cart")["active"] == 0
    with pytest.raises(journeys.JourneyError, match="stopped"):
        journeys.set_status(platform.state, "abandoned-cart", "active")


def test_an_instance_follows_its_customer_through_a_merge(
    platform: Platform, clock: Clock, sender: RecordingSender
) -> None:
    web = add_source(platform.state, "web", "web")
    app = add_source(platform.state, "app", "app")
    pos = add_source(platform.state, "pos", "store")
    journeys.apply(platform.state, CART, activate=True)
    browsing = {"type": "page", "name": "Home", "anonymousId": "anon-1", "messageId": "v1"}
    ingest(platform, web.write_key, [browsing], clock.now)  # the older, anonymous profile
    app_cart = {"type": "track", "event": "Cart Abandoned", "userId": "cara", "messageId": "c1"}
    ingest(platform, app.write_key, [app_cart], clock.now)
    platform.journeys.run_until_idle()
    with platform.state.connect() as conn:
        started_on = conn.execute(sa.select(t.journey_instances.c.profile_id)).scalar_one()
    clock.advance(hours=1)  # she signs in on the web: her app profile joins the older anonymous one
    login = {"type": "identify", "anonymousId": "anon-1", "userId": "cara", "messageId": "i1"}
    ingest(platform, web.write_key, [login], clock.now)
    assert profiles.resolve(platform.state, platform.rules, "user_id:cara") != started_on  # retired by the merge
    clock.advance(hours=2)
    receipt = {"type": "track", "event": "Order Completed", "userId": "cara", "messageId": "r1"}
    ingest(platform, pos.write_key, [receipt], clock.now)
    clock.advance(days=3)
    platform.journeys.run_until_idle()
    assert sender.sent == []
    assert journeys.stats(platform.state, "abandoned-cart")["exited"] == {"exit event: Order Completed (store)": 1}
