"""Delivery policy over real stores: stories 6 (reps), 8 (quiet hours are theirs), 9 (caps), control group."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from accord.messaging.broadcasts import create_broadcast
from accord.messaging.policy import CapRule, PolicyConfig, QuietHours, in_control_group
from accord.messaging.service import Messaging
from accord.platform import Platform
from tests.messaging.helpers import person

PROMO = {
    "name": "promo",
    "purpose": "promotions",
    "tags": ["promo"],
    "locales": {"en": {"email": {"subject": "Hi {{ first_name }}", "text": "Offer"}, "sms": {"text": "Offer"}}},
}
READY = {
    "name": "pickup-ready",
    "purpose": "order_updates",
    "locales": {
        "en": {"sms": {"text": "Your order {{ order_id }} is ready"}, "email": {"subject": "Ready", "text": "Ready"}}
    },
}
NOTE = {
    "name": "rep-note",
    "purpose": "service",
    "locales": {"en": {"email": {"subject": "Following up", "text": "Hi {{ first_name }}, as promised..."}}},
}


@pytest.fixture
def messaging(platform: Platform) -> Messaging:
    m = platform.messaging
    for spec in (PROMO, READY, NOTE):
        m.save_template(spec)
    return m


def reachable_person(platform: Platform, user: str, **traits: str) -> str:
    pid = person(
        platform,
        user,
        first_name=user.title(),
        email=f"{user}@example.com",
        phone="+4860100" + str(abs(hash(user)) % 10000).zfill(4),
        **traits,
    )
    for channel, ident in (("email", f"email:{user}@example.com"), ("sms", f"user_id:{user}")):
        platform.consents.set(ident, "promotions", channel, "opted_in", "test")
    return pid


def test_story_9_caps_across_channels_and_transactional_is_exempt(platform: Platform, messaging: Messaging) -> None:
    messaging.policy = PolicyConfig(
        caps=[CapRule(1, "day"), CapRule(3, "week"), CapRule(2, "week", channel="sms"), CapRule(1, "week", tag="vip")],
        quiet_hours=None,
    )
    pid = reachable_person(platform, "gus")
    first = messaging.send(pid, "promo", channels=["email"])
    second = messaging.send(pid, "promo", channels=["sms", "email"])  # another journey, another channel, same day
    assert first["status"] == "queued"
    assert (second["status"], second["reason"]) == ("dropped", "frequency cap 1/day reached")
    ready = messaging.send(pid, "pickup-ready", channels=["sms"], kind="transactional", extra={"order_id": "O-1"})
    assert ready["status"] == "queued" and ready["channel"] == "sms"  # order notices are never capped
    # per-week and per-channel rules, planned over several days
    days = [datetime(2031, 3, d, 12, tzinfo=UTC) for d in (3, 4, 5, 6)]
    outcomes = [messaging.send(pid, "promo", channels=["sms", "email"], at=day) for day in days]
    assert [o["status"] for o in outcomes] == ["queued", "queued", "queued", "dropped"]
    assert [o["channel"] for o in outcomes[:3]] == ["sms", "sms", "email"]  # sms cap 2/week: falls to email
    assert "cap 2/week on sms reached" in outcomes[2]["reason"]
    assert outcomes[3]["reason"] == "frequency cap 3/week reached"
    vip = messaging.send(pid, "promo", channels=["email"], tags=["vip"], at=datetime(2031, 4, 1, 12, tzinfo=UTC))
    vip2 = messaging.send(pid, "promo", channels=["email"], tags=["vip"], at=datetime(2031, 4, 3, 12, tzinfo=UTC))
    assert (vip["status"], vip2["status"], vip2["reason"]) == (
        "queued",
        "dropped",
        "frequency cap 1/week tag vip reached",
    )


def test_story_8_quiet_hours_are_theirs_not_ours(platform: Platform, messaging: Messaging) -> None:
    messaging.policy = PolicyConfig(
        quiet_hours=QuietHours(time(21), time(9), "defer"),
        workspace_timezone="Europe/Warsaw",
        store_timezones={"S-SH": "Asia/Shanghai"},
    )
    warsaw = reachable_person(platform, "wanda")
    shanghai = reachable_person(platform, "mei", timezone="Asia/Shanghai")
    by_store = reachable_person(platform, "li", home_store="S-SH")  # no time zone of her own: her store's
    launch = datetime(2031, 5, 6, 14, 0, tzinfo=UTC)  # 16:00 in Warsaw = 22:00 in Shanghai
    here = messaging.send(warsaw, "promo", channels=["email"], at=launch)
    there = messaging.send(shanghai, "promo", channels=["email"], at=launch)
    store = messaging.send(by_store, "promo", channels=["email"], at=launch)
    assert here["due_at"] == launch.isoformat()
    assert there["due_at"] == "2031-05-07T01:00:00+00:00"  # 09:00 in Shanghai, not midnight nor 3 a.m.
    assert store["due_at"] == there["due_at"] and "Asia/Shanghai" in store["reason"]
    # a broadcast at 10:00 local time of day reaches each at 10:00 in their own zone
    b = create_broadcast(
        messaging,
        "spring",
        "promo",
        {"profile_ids": [warsaw, shanghai]},
        channels=["email"],
        at=datetime(2031, 6, 1, 6, 0, tzinfo=UTC),
        local_time="10:00",
    )
    assert b["planned"] == {"queued": 2}
    dues = {d["profile_id"]: d["due_at"] for pid in (warsaw, shanghai) for d in messaging.deliveries_of(pid)[:1]}
    assert dues == {warsaw: "2031-06-01T08:00:00+00:00", shanghai: "2031-06-02T02:00:00+00:00"}
    # drop instead of defer
    messaging.policy.quiet_hours = QuietHours(time(21), time(9), "drop")
    dropped = messaging.send(shanghai, "promo", channels=["email"], at=datetime(2031, 7, 1, 15, tzinfo=UTC))
    assert (dropped["status"], dropped["reason"]) == ("dropped", "quiet hours at 23:00 Asia/Shanghai")


def test_story_6_people_talking_to_a_person_are_held_out_but_their_rep_gets_through(
    platform: Platform, messaging: Messaging
) -> None:
    messaging.policy = PolicyConfig(quiet_hours=None)
    talking = reachable_person(platform, "hal")
    casey = reachable_person(platform, "casey")
    free = reachable_person(platform, "ivy")
    messaging.suppress(talking, "sales_conversation", note="deal 42 with rep Rob")
    messaging.suppress(casey, "support_case")
    b = create_broadcast(messaging, "bulk", "promo", {"profile_ids": [talking, casey, free]}, channels=["email"])
    assert b["planned"] == {"suppressed": 2, "queued": 1}
    assert messaging.deliveries_of(talking)[0]["reason"] == "suppressed: sales_conversation"
    note = messaging.send(talking, "rep-note", channels=["email"], kind="one_to_one", sender="Rob <rob@shop.example>")
    assert note["status"] == "queued"
    content = messaging.delivery(note["id"])["content"][0]
    assert content["fields"]["from"] == "Rob <rob@shop.example>" and "headers" not in content  # no bulk unsubscribe
    assert messaging.lift(talking, "sales_conversation")
    again = messaging.send(talking, "promo", channels=["email"], at=datetime(2031, 1, 5, 12, tzinfo=UTC))
    assert again["status"] == "queued"


def test_global_control_group_and_broadcast_holdout_are_deterministic(platform: Platform, messaging: Messaging) -> None:
    config = PolicyConfig(control_group_percent=10, quiet_hours=None)
    ids = [f"P{i:05d}" for i in range(5000)]
    held = [p for p in ids if in_control_group(p, config)]
    assert 400 < len(held) < 600 and held == [p for p in ids if in_control_group(p, config)]
    messaging.policy = PolicyConfig(quiet_hours=None)
    people = [reachable_person(platform, f"h{i}") for i in range(12)]
    first = create_broadcast(
        messaging, "h", "promo", {"profile_ids": people}, channels=["email"], holdout_percent=50, broadcast_id="B1"
    )
    again = create_broadcast(
        messaging, "h", "promo", {"profile_ids": people}, channels=["email"], holdout_percent=50, broadcast_id="B1"
    )  # resumed: nobody is planned twice
    assert first["planned"] == again["planned"] and set(first["planned"]) == {"held_out", "queued"}
    assert sum(len(messaging.deliveries_of(p)) for p in people) == 12


def test_story_6_hold_outs_follow_conversation_and_case_events_from_other_systems(
    platform: Platform, messaging: Messaging
) -> None:
    from accord.collect.emit import emit

    messaging.policy = PolicyConfig(quiet_hours=None)
    pid = reachable_person(platform, "jon")

    def event(name: str) -> None:
        with platform.state.begin() as conn:
            emit(conn, platform.journal, "crm-desk", "call_center", [{"event": name, "userId": "jon"}])
        assert platform.processor.drain()

    event("Sales Conversation Started")
    held = messaging.send(pid, "promo", channels=["email"], at=datetime(2031, 2, 1, 12, tzinfo=UTC))
    assert (held["status"], held["reason"]) == ("suppressed", "suppressed: sales_conversation")
    event("Support Case Opened")
    event("Sales Conversation Ended")
    still = messaging.send(pid, "promo", channels=["email"], at=datetime(2031, 2, 2, 12, tzinfo=UTC))
    assert still["reason"] == "suppressed: support_case"
    event("Support Case Closed")
    free = messaging.send(pid, "promo", channels=["email"], at=datetime(2031, 2, 3, 12, tzinfo=UTC))
    assert free["status"] == "queued"


def test_ab_variants_split_by_weight_and_stay_put() -> None:
    from accord.messaging.broadcasts import variant_for

    arms = [{"name": "A", "weight": 1}, {"name": "B", "weight": 3}]
    picks = [variant_for("B1", f"P{i}", arms)["name"] for i in range(4000)]
    assert 850 < picks.count("A") < 1150  # a quarter
    assert picks == [variant_for("B1", f"P{i}", arms)["name"] for i in range(4000)]


def test_a_broadcast_to_a_segment_reaches_its_members(platform: Platform, messaging: Messaging) -> None:
    from accord.segments import service as segments
    from accord.segments.engines import DuckDBEngine
    from accord.segments.rules import parse_documents

    messaging.policy = PolicyConfig(quiet_hours=None)
    pole = reachable_person(platform, "ola", country="PL")
    reachable_person(platform, "sven", country="DK")
    definition = parse_documents("name: poles\nrule:\n  trait: country\n  in: [PL]\n", "segment")[0]
    segments.apply_segment(platform.state, DuckDBEngine(platform.events), platform.journal, definition, None)
    planned = create_broadcast(messaging, "pl", "promo", {"segment": "poles"}, channels=["email"])
    assert (planned["audience"], planned["planned"]) == (1, {"queued": 1})
    assert [d["profile_id"] for d in messaging.deliveries_of(pole)] == [pole]
