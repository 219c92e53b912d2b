"""Suppression "already purchased the promoted item": the rule, messaging's record of purchases from order events of
every channel (returns included), broadcasts (one process and worker processes), journeys and one message."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from accord.collect.emit import emit
from accord.collect.importers import import_orders
from accord.collect.imports import JournalSink
from accord.collect.segment import SourceInfo
from accord.collect.sources import ensure_source
from accord.consent.service import Purpose
from accord.journeys import service as journeys
from accord.messaging import tables as t
from accord.messaging.broadcasts import create_broadcast
from accord.messaging.parallel import ParallelPlanner
from accord.messaging.policy import MARKETING, TRANSACTIONAL, PolicyConfig, decide
from accord.messaging.purchases import Promotion, PromotionError, PurchaseLedger, purchases_of
from accord.messaging.sender import Sender
from accord.messaging.service import Messaging, MessagingError
from accord.platform import Platform
from accord.segments import service as segments
from accord.segments.engines import DuckDBEngine
from accord.segments.rules import parse_documents
from accord.storage import utcnow
from tests.conftest import free_port
from tests.messaging.helpers import SmtpSink, person

SNEAKERS = {
    "name": "sneaker-launch",
    "purpose": "promotions",
    "promotes": {"skus": ["SKU-RUN-42"], "within": "90d"},
    "locales": {"en": {"email": {"subject": "New runners, {{ first_name }}", "text": "The RUN-42 is here"}}},
}
PLAIN = {
    "name": "newsletter",
    "purpose": "promotions",
    "locales": {"en": {"email": {"subject": "News", "text": "News for {{ first_name }}"}}},
}
RECEIPT = {
    "name": "receipt-tips",
    "purpose": "order_updates",
    "promotes": {"skus": ["SKU-RUN-42"]},
    "locales": {"en": {"email": {"subject": "Care tips", "text": "How to care for your runners"}}},
}
MARKETING_PURPOSE = Purpose("promotions", transactional=False)


# -- the rule, pure ---------------------------------------------------------------------------------------------------
def _decide(purchased: str | None, kind: str = MARKETING, purpose: Purpose = MARKETING_PURPOSE) -> Any:
    return decide(
        profile_id="P1",
        identifiers={"email": ["ann@example.com"]},
        traits={},
        purpose=purpose,
        kind=kind,
        channels=["email"],
        tags=[],
        consent={},
        history=[],
        suppressed=[],
        due_at=datetime(2031, 5, 6, 12, tzinfo=UTC),
        config=PolicyConfig(quiet_hours=None),
        purchased=purchased,
    )


def test_the_rule_suppresses_marketing_only_and_records_the_item() -> None:
    held = _decide("SKU-RUN-42 within 90d")
    assert (held.status, held.reason) == ("suppressed", "already_purchased: SKU-RUN-42 within 90d")
    assert _decide(None).status != "suppressed"  # nothing bought: the rest of the policy decides
    transactional = _decide("SKU-RUN-42 within 90d", kind=TRANSACTIONAL)
    assert "already_purchased" not in transactional.reason
    service = _decide("SKU-RUN-42 within 90d", purpose=Purpose("order_updates", transactional=True))
    assert "already_purchased" not in service.reason


def test_promotion_declarations_parse_or_fail_clearly() -> None:
    assert Promotion.parse(None) is None and Promotion.parse({}) is None
    default = Promotion.parse({"skus": ["A", "A", "B"]})
    assert default == Promotion(("A", "B"), (), timedelta(days=90))
    assert Promotion.parse({"categories": "shoes", "within": "12w"}) == Promotion((), ("shoes",), timedelta(weeks=12))
    assert Promotion.parse({"skus": ["A"], "within": 30}) == Promotion(("A",), (), timedelta(days=30))
    assert Promotion.parse({"skus": ["A"], "within": "36h"}).to_dict() == {"skus": ["A"], "within": "36h"}  # type: ignore[union-attr]
    for bad, message in [
        ({"within": "90d"}, "at least one SKU or category"),
        ({"skus": ["A"], "within": "soon"}, "within must be like"),
        ({"skus": ["A"], "within": "0d"}, "within must be like"),
        ({"skus": [""]}, "non-empty names"),
        ({"skus": ["A"], "until": "x"}, "unknown keys"),
        (["A"], "must be an object"),
    ]:
        with pytest.raises(PromotionError, match=message):
            Promotion.parse(bad)


# -- on the real stores (SQLite and PostgreSQL) -------------------------------------------------------------------
@pytest.fixture
def messaging(platform: Platform) -> Messaging:
    m = platform.messaging
    m.policy = PolicyConfig(quiet_hours=None)
    for spec in (SNEAKERS, PLAIN, RECEIPT):
        m.save_template(spec)
    return m


def customer(platform: Platform, user: str, card: str | None = None) -> str:
    """A customer known by user id, email and (optionally) loyalty card, opted in to promotions by email."""
    message: dict[str, Any] = {
        "type": "identify",
        "userId": user,
        "traits": {"first_name": user.title(), "email": f"{user}@example.com"},
    }
    if card:
        message["context"] = {"externalIds": [{"type": "loyalty_card", "id": card, "collection": "users"}]}
    with platform.state.begin() as conn:
        emit(conn, platform.journal, "test-crm", "other", [message])
    assert platform.processor.drain()
    platform.consents.set(f"email:{user}@example.com", "promotions", "email", "opted_in", "test")
    pid = person(platform, user)
    assert pid
    return pid


def order_event(
    platform: Platform, user: str, event: str, order_id: str, products: list[dict[str, Any]], **extra: Any
) -> None:
    """An order event from another system (web shop, call centre, returns desk), through the real processor."""
    at = extra.pop("at", None)
    message: dict[str, Any] = {
        "type": "track",
        "event": event,
        "userId": user,
        "properties": {"order_id": order_id, "products": products, "currency": "PLN", **extra},
    }
    if at is not None:
        message["timestamp"] = at.isoformat()
    with platform.state.begin() as conn:
        emit(conn, platform.journal, "web-shop", "web", [message])
    assert platform.processor.drain()


def test_purchases_from_any_channel_count_until_returned(platform: Platform, messaging: Messaging) -> None:
    ann = customer(platform, "ann")
    order_event(platform, "ann", "Order Completed", "W-1", [{"sku": "SKU-RUN-42", "quantity": 2, "price": 399}])
    held = messaging.send(ann, "sneaker-launch", channels=["email"])
    assert (held["status"], held["reason"]) == ("suppressed", "already_purchased: SKU-RUN-42 within 90d")
    assert messaging.send(ann, "newsletter", channels=["email"])["status"] == "queued"  # promotes nothing
    receipt = messaging.send(ann, "receipt-tips", channels=["email"], kind="transactional")
    assert receipt["status"] == "queued"  # transactional messages are exempt

    # one of two pairs back, reported twice (a return and its refund carry the same return id): still bought
    for event in ("Order Returned", "Order Refunded"):
        order_event(platform, "ann", event, "W-1", [{"sku": "SKU-RUN-42", "quantity": 1}], return_id="R-1")
    assert [(p["quantity"], p["returned_quantity"], p["channel"]) for p in purchases_of(platform.state, ann)] == [
        (2, 1, "web")
    ]
    assert messaging.send(ann, "sneaker-launch", channels=["email"])["status"] == "suppressed"
    # the second pair goes back at a store: nothing bought any more
    order_event(platform, "ann", "Order Returned", "W-1", [{"sku": "SKU-RUN-42", "quantity": 1}], return_id="R-2")
    assert purchases_of(platform.state, ann)[0]["returned_quantity"] == 2
    again = messaging.send(ann, "sneaker-launch", channels=["email"])
    assert again["status"] == "queued", again["reason"]


def test_window_categories_and_a_broadcast_declaration(platform: Platform, messaging: Messaging) -> None:
    ann, bob, cid = customer(platform, "ann"), customer(platform, "bob"), customer(platform, "cid")
    long_ago = utcnow() - timedelta(days=120)
    order_event(platform, "ann", "Order Completed", "C-1", [{"sku": "SKU-RUN-42"}], at=long_ago)  # call centre
    order_event(platform, "bob", "Order Completed", "W-2", [{"sku": "SKU-TRAIL-7", "category": "running shoes"}])
    order_event(platform, "cid", "Order Completed", "W-3", [{"sku": "SKU-SOCKS", "category": "socks"}])
    order_event(platform, "cid", "Order Cancelled", "W-3", [])  # cancelled: the whole order goes back

    def statuses(result: dict[str, Any]) -> dict[str, tuple[str, str]]:
        with platform.state.connect() as conn:
            rows = conn.execute(
                sa.select(t.deliveries.c.profile_id, t.deliveries.c.status, t.deliveries.c.reason).where(
                    t.deliveries.c.broadcast_id == result["id"]
                )
            )
            return {pid: (status, reason) for pid, status, reason in rows}

    people = {"profile_ids": [ann, bob, cid]}
    template_only = statuses(create_broadcast(messaging, "launch", "sneaker-launch", people, channels=["email"]))
    assert {pid: s for pid, (s, _) in template_only.items()} == {ann: "queued", bob: "queued", cid: "queued"}

    wider = create_broadcast(
        messaging,
        "launch-2",
        "newsletter",
        people,
        channels=["email"],
        promotes={"skus": ["SKU-RUN-42"], "categories": ["running shoes", "socks"], "within": "26w"},
    )
    decided = statuses(wider)
    assert decided[ann] == ("suppressed", "already_purchased: SKU-RUN-42 within 182d")
    assert decided[bob] == ("suppressed", "already_purchased: SKU-TRAIL-7 (category running shoes) within 182d")
    assert decided[cid][0] == "queued"
    assert wider["planned"] == {"suppressed": 2, "queued": 1}
    with pytest.raises(MessagingError, match="within must be like") as bad:
        create_broadcast(messaging, "x", "newsletter", people, promotes={"skus": ["A"], "within": "a while"})
    assert bad.value.code == "invalid_promotes"
    with pytest.raises(MessagingError) as bad_template:
        messaging.save_template({**PLAIN, "name": "bad", "promotes": {"within": "30d"}})
    assert bad_template.value.code == "invalid_promotes"
    assert messaging.list_templates()[1]["promotes"] == {"skus": ["SKU-RUN-42"], "within": "90d"}


def test_rebuild_from_the_event_store_and_erasure(platform: Platform, messaging: Messaging) -> None:
    from accord.messaging.privacy import erase_person

    ann = customer(platform, "ann")
    order_event(platform, "ann", "Order Completed", "W-1", [{"sku": "SKU-RUN-42", "quantity": 1}])
    order_event(platform, "ann", "Order Completed", "W-2", [{"sku": "SKU-CAP", "quantity": 1}])
    order_event(platform, "ann", "Order Returned", "W-2", [{"sku": "SKU-CAP", "quantity": 1}], return_id="R-9")
    kept = purchases_of(platform.state, ann)
    assert platform.purchases is not None
    with platform.state.begin() as conn:  # an install upgraded from before the table existed
        conn.execute(t.purchases.delete())
        conn.execute(t.purchase_returns.delete())
        conn.execute(t.listener_cursors.delete().where(t.listener_cursors.c.name == "purchases"))
    assert purchases_of(platform.state, ann) == []
    upgraded = PurchaseLedger(platform.state, platform.events, platform.graph.changes_since)  # the next start
    upgraded.catch_up()  # what its first slice does: the whole event store
    assert purchases_of(platform.state, ann) == kept
    report = platform.purchases.rebuild()
    assert (report["purchase_lines"], report["people"], report["events"]) == (2, 1, 3)
    assert purchases_of(platform.state, ann) == kept
    assert messaging.send(ann, "sneaker-launch", channels=["email"])["reason"].startswith("already_purchased")

    erase_person(platform.state, platform.events, platform.consents, messaging, "email:ann@example.com", "dpo")
    assert purchases_of(platform.state, ann) == []


def test_a_purchase_follows_the_person_through_a_merge(
    platform: Platform, messaging: Messaging, tmp_path: Path
) -> None:
    ann = customer(platform, "ann")
    till_receipt(platform, tmp_path, "2990000000011", "SKU-RUN-42")  # a card nobody knew yet: a profile of its own
    assert purchases_of(platform.state, ann) == []
    assert messaging.send(ann, "sneaker-launch", channels=["email"])["status"] == "queued"
    # she logs into the app with the card on her account: the card's profile merges into hers
    with platform.state.begin() as conn:
        emit(
            conn,
            platform.journal,
            "app",
            "app",
            [
                {
                    "type": "identify",
                    "userId": "ann",
                    "context": {
                        "externalIds": [{"type": "loyalty_card", "id": "2990000000011", "collection": "users"}]
                    },
                }
            ],
        )
    assert platform.processor.drain()
    current = person(platform, "ann")
    assert [p["sku"] for p in purchases_of(platform.state, current)] == ["SKU-LACES", "SKU-RUN-42"]
    later = messaging.send(current, "sneaker-launch", channels=["email"])
    assert (later["status"], later["reason"]) == ("suppressed", "already_purchased: SKU-RUN-42 within 90d")

    # it was her partner's card after all: the unmerge takes the receipt (and the purchase) away from her again
    card_owner = platform.graph.unmerge(current, "loyalty_card:2990000000011", "shared card")
    platform.processor.sync_identity()
    assert purchases_of(platform.state, current) == []
    assert [p["sku"] for p in purchases_of(platform.state, card_owner)] == ["SKU-LACES", "SKU-RUN-42"]
    assert (
        messaging.send(current, "sneaker-launch", channels=["email"], idempotency_key="after-unmerge")["status"]
        == "queued"
    )


def test_commerce_orders_and_returns_through_the_commerce_write_path(platform: Platform, messaging: Messaging) -> None:
    """Messaging learns what commerce sold from its events only: an online order, then part of it returned in a
    store, and a pickup order that was cancelled."""
    from accord.commerce import inventory, orders
    from tests.commerce.conftest import seed

    seed(platform)
    s, j = platform.state, platform.journal
    ann = customer(platform, "ann")
    inventory.adjust(s, j, "online", "BOOK-1", 5)
    inventory.adjust(s, j, "online", "LAMP-1", 5)
    order = orders.place_order(
        s,
        j,
        {
            "channel": "web",
            "fulfilment": "ship",
            "location_id": "online",
            "customer": "email:ann@example.com",
            "lines": [{"sku": "BOOK-1", "quantity": 2}, {"sku": "LAMP-1", "quantity": 1}],
        },
    )
    assert platform.processor.drain()
    assert sorted((p["sku"], p["quantity"], p["returned_quantity"]) for p in purchases_of(s, ann)) == [
        ("BOOK-1", 2, 0),
        ("LAMP-1", 1, 0),
    ]
    lamp = {"skus": ["LAMP-1"], "within": "30d"}
    first = create_broadcast(
        messaging, "lamps", "newsletter", {"profile_ids": [ann]}, channels=["email"], promotes=lamp
    )
    assert first["planned"] == {"suppressed": 1}
    orders.transition(s, j, order["id"], "shipped")
    orders.transition(s, j, order["id"], "delivered")
    orders.return_order(s, j, order["id"], {"location_id": "waw-mokotow", "channel": "store"})  # everything back
    assert platform.processor.drain()
    assert sorted((p["sku"], p["returned_quantity"]) for p in purchases_of(s, ann)) == [("BOOK-1", 2), ("LAMP-1", 1)]
    second = create_broadcast(
        messaging, "lamps-2", "newsletter", {"profile_ids": [ann]}, channels=["email"], promotes=lamp
    )
    assert second["planned"] == {"queued": 1}

    inventory.adjust(s, j, "waw-centrum", "LAMP-1", 1)
    pickup = orders.place_order(
        s,
        j,
        {
            "channel": "web",
            "fulfilment": "pickup",
            "location_id": "waw-centrum",
            "customer": "email:ann@example.com",
            "lines": [{"sku": "LAMP-1", "quantity": 1}],
        },
    )
    assert platform.processor.drain()
    assert messaging.send(ann, "newsletter", channels=["email"])["status"] == "queued"  # no declaration
    held = create_broadcast(
        messaging, "lamps-3", "newsletter", {"profile_ids": [ann]}, channels=["email"], promotes=lamp
    )
    assert held["planned"] == {"suppressed": 1}
    orders.transition(s, j, pickup["id"], "cancelled")
    assert platform.processor.drain()
    freed = create_broadcast(
        messaging, "lamps-4", "newsletter", {"profile_ids": [ann]}, channels=["email"], promotes=lamp
    )
    assert freed["planned"] == {"queued": 1}


def test_parallel_planner_applies_the_rule_per_chunk(platform: Platform, messaging: Messaging) -> None:
    buyers = [customer(platform, f"b{i}") for i in range(3)]
    others = [customer(platform, f"o{i}") for i in range(3)]
    for i in range(3):
        order_event(platform, f"b{i}", "Order Completed", f"W-{i}", [{"sku": "SKU-RUN-42"}])
    with ParallelPlanner(messaging, workers=2) as planner:
        result = create_broadcast(
            messaging, "launch", "sneaker-launch", {"profile_ids": buyers + others}, channels=["email"], planner=planner
        )
    assert result["planned"] == {"suppressed": 3, "queued": 3}
    for pid in buyers:
        assert messaging.deliveries_of(pid)[0]["reason"] == "already_purchased: SKU-RUN-42 within 90d"


# -- end to end: bought at the till, then the campaign ---------------------------------------------------------------
@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    with SmtpSink(free_port()) as sink:
        yield sink


def till_receipt(platform: Platform, tmp_path: Path, card: str, sku: str) -> None:
    """A POS receipt (loyalty card at the till) imported as the stores export them, through the processor."""
    path = tmp_path / "receipts.csv"
    at = (utcnow() - timedelta(days=3)).isoformat()
    path.write_text(
        "order_id,store_id,ordered_at,loyalty_card,email,phone,sku,quantity,unit_price,currency\n"
        f"POS-77,st-waw-01,{at},{card},,,{sku},1,399.00,PLN\n"
        f"POS-77,st-waw-01,{at},{card},,,SKU-LACES,1,9.90,PLN\n"
    )
    source = ensure_source(platform.state, "pos", "store")
    report = import_orders(path, JournalSink(platform.journal, SourceInfo(source.id, source.channel)))
    assert report.accepted == 1
    assert platform.processor.drain()


def test_bought_in_store_then_the_broadcast_skips_her_and_mails_him(
    platform: Platform, messaging: Messaging, smtp: SmtpSink, tmp_path: Path
) -> None:
    ann = customer(platform, "ann", card="2990000000011")
    bob = customer(platform, "bob", card="2990000000028")
    till_receipt(platform, tmp_path, "2990000000011", "SKU-RUN-42")
    assert [(p["sku"], p["channel"]) for p in purchases_of(platform.state, ann)] == [
        ("SKU-LACES", "store"),
        ("SKU-RUN-42", "store"),
    ]
    messaging.add_provider("mail", "email", "smtp", {"port": smtp.controller.port, "from": "Shop <shop@example.com>"})
    result = create_broadcast(messaging, "launch", "sneaker-launch", {"profile_ids": [ann, bob]}, channels=["email"])
    assert result["planned"] == {"suppressed": 1, "queued": 1}
    assert Sender(messaging, backoff=0.01).drain(timeout=30) == 1
    assert [(m["To"], m["Subject"]) for m in smtp.messages] == [("bob@example.com", "New runners, Bob")]
    (her,) = messaging.deliveries_of(ann)
    assert (her["status"], her["reason"], her["channel"]) == (
        "suppressed",
        "already_purchased: SKU-RUN-42 within 90d",
        None,
    )
    assert messaging.deliveries_of(bob)[0]["status"] == "sent"


SHOE_FANS = "name: shoe-fans\nrule:\n  trait: likes\n  eq: running\n"
LAUNCH_JOURNEY = """
name: runner-launch
trigger: {segment_entered: shoe-fans}
steps:
  - id: launch
    send: {template: sneaker-launch, channels: [email]}
"""


def test_a_journey_send_step_skips_a_customer_who_bought_at_the_till(
    platform: Platform, messaging: Messaging, smtp: SmtpSink, tmp_path: Path
) -> None:
    platform.segments.clock = lambda: datetime.now(UTC)
    ann = customer(platform, "ann", card="2990000000011")
    bob = customer(platform, "bob")
    till_receipt(platform, tmp_path, "2990000000011", "SKU-RUN-42")
    segments.apply_segment(
        platform.state, DuckDBEngine(platform.events), platform.journal, parse_documents(SHOE_FANS, "segment")[0], None
    )
    journeys.apply(platform.state, LAUNCH_JOURNEY, activate=True)
    person(platform, "ann", likes="running")
    person(platform, "bob", likes="running")
    platform.journeys.run_until_idle()
    messaging.add_provider("mail", "email", "smtp", {"port": smtp.controller.port, "from": "Shop <shop@example.com>"})
    assert Sender(messaging, backoff=0.01).drain(timeout=30) == 1
    assert [m["To"] for m in smtp.messages] == ["bob@example.com"]
    assert messaging.deliveries_of(bob)[0]["status"] == "sent"
    (her,) = messaging.deliveries_of(ann)
    assert (her["status"], her["reason"]) == ("suppressed", "already_purchased: SKU-RUN-42 within 90d")
    assert her["idempotency_key"].endswith(":launch")  # decided by the journey's send step
