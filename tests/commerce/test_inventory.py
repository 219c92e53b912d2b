"""Stock levels, adjustments, cycle counts and accuracy, reservations with expiry, availability, back in stock."""

from __future__ import annotations

from datetime import timedelta

import pytest

from accord.commerce import inventory
from accord.commerce.errors import Conflict, InsufficientStock, NotFound
from accord.platform import Platform
from accord.storage import utcnow

from .conftest import events_named


def test_atp_respects_reservations_and_safety_stock(shop: Platform) -> None:
    s, j = shop.state, shop.journal
    inventory.adjust(s, j, "waw-centrum", "BOOK-1", 10)
    inventory.set_safety_stock(s, j, "waw-centrum", "BOOK-1", 2)
    held = inventory.reserve(s, j, "waw-centrum", "BOOK-1", 5)
    assert inventory.stock_level(s, "waw-centrum", "BOOK-1") == {
        "location_id": "waw-centrum",
        "sku": "BOOK-1",
        "on_hand": 10,
        "reserved": 5,
        "safety_stock": 2,
        "atp": 3,
    }
    with pytest.raises(InsufficientStock):
        inventory.reserve(s, j, "waw-centrum", "BOOK-1", 4)
    inventory.release(s, j, held.id)
    inventory.release(s, j, held.id)  # harmless twice
    assert inventory.stock_level(s, "waw-centrum", "BOOK-1")["atp"] == 8
    with pytest.raises(Conflict):
        inventory.adjust(s, j, "waw-centrum", "BOOK-1", -11)
    with pytest.raises(NotFound):
        inventory.adjust(s, j, "nowhere", "BOOK-1", 1)


def test_idempotent_reservation_and_expiry(shop: Platform) -> None:
    s, j = shop.state, shop.journal
    inventory.adjust(s, j, "waw-centrum", "BOOK-1", 3)
    first = inventory.reserve(s, j, "waw-centrum", "BOOK-1", 2, ttl_seconds=60, idempotency_key="k-1")
    again = inventory.reserve(s, j, "waw-centrum", "BOOK-1", 2, ttl_seconds=60, idempotency_key="k-1")
    assert again.id == first.id
    assert inventory.stock_level(s, "waw-centrum", "BOOK-1")["reserved"] == 2
    with pytest.raises(Conflict, match="different"):
        inventory.reserve(s, j, "waw-centrum", "BOOK-1", 1, idempotency_key="k-1")
    assert inventory.release_expired(s, j, now=utcnow()) == 0
    assert inventory.release_expired(s, j, now=utcnow() + timedelta(seconds=61)) == 1
    assert inventory.get_reservation(s, first.id).status == "expired"
    assert inventory.stock_level(s, "waw-centrum", "BOOK-1")["atp"] == 3


def test_an_expired_hold_does_not_block_a_new_reservation(shop: Platform) -> None:
    s, j = shop.state, shop.journal
    inventory.adjust(s, j, "waw-centrum", "LAMP-1", 1)
    inventory.reserve(s, j, "waw-centrum", "LAMP-1", 1, ttl_seconds=1)
    import time

    time.sleep(1.1)
    assert inventory.reserve(s, j, "waw-centrum", "LAMP-1", 1).status == "active"


def test_cycle_counts_give_inventory_accuracy(shop: Platform) -> None:
    s, j = shop.state, shop.journal
    inventory.adjust(s, j, "waw-centrum", "BOOK-1", 10)
    inventory.adjust(s, j, "waw-centrum", "LAMP-1", 10)
    counted = inventory.cycle_count(s, j, "waw-centrum", "BOOK-1", 8)
    assert (counted["expected"], counted["counted"], counted["on_hand"]) == (10, 8, 8)
    inventory.cycle_count(s, j, "waw-centrum", "LAMP-1", 10)
    acc = inventory.inventory_accuracy(s, "waw-centrum")
    assert acc["counts"] == 2 and acc["record_accuracy"] == 0.5 and acc["unit_accuracy"] == 0.9


def test_availability_only_where_stock_is_nearest_first(shop: Platform) -> None:
    s, j = shop.state, shop.journal
    inventory.adjust(s, j, "waw-mokotow", "BOOK-1", 4)
    inventory.adjust(s, j, "krk-rynek", "BOOK-1", 1)
    inventory.adjust(s, j, "lon-oxford", "BOOK-1", 9)
    inventory.adjust(s, j, "wh-1", "BOOK-1", 100)  # a warehouse is not a store
    inventory.adjust(s, j, "waw-centrum", "BOOK-1", 1)
    inventory.reserve(s, j, "waw-centrum", "BOOK-1", 1)  # sold out there now
    near_centrum = (52.2300, 21.0120)
    found = inventory.availability(s, "BOOK-1", *near_centrum, limit=5)
    assert [f["location_id"] for f in found] == ["waw-mokotow", "krk-rynek", "lon-oxford"]
    assert found[0]["atp"] == 4 and 5000 < found[0]["distance_m"] < 6000
    assert [f["location_id"] for f in inventory.availability(s, "BOOK-1", *near_centrum, limit=1)] == ["waw-mokotow"]
    assert inventory.availability(s, "BOOK-1", *near_centrum, radius_km=50) == found[:1]
    assert inventory.availability(s, "NOPE", *near_centrum) == []


def test_back_in_stock_notifies_each_subscriber_once(shop: Platform) -> None:
    s, j = shop.state, shop.journal
    inventory.adjust(s, j, "waw-centrum", "LAMP-1", 1)
    held = inventory.reserve(s, j, "waw-centrum", "LAMP-1", 1)
    inventory.subscribe_back_in_stock(s, "LAMP-1", "email:ann@example.com", "waw-centrum")
    inventory.subscribe_back_in_stock(s, "LAMP-1", "email:ann@example.com", "waw-centrum")  # same subscription
    inventory.subscribe_back_in_stock(s, "LAMP-1", "user_id:bob")  # anywhere
    inventory.subscribe_back_in_stock(s, "LAMP-1", "user_id:carl", "krk-rynek")  # elsewhere
    inventory.release(s, j, held.id)  # 0 -> 1
    inventory.adjust(s, j, "waw-centrum", "LAMP-1", 3)  # 1 -> 4: not "back", no second notice
    inventory.adjust(s, j, "online", "LAMP-1", 2)
    events = events_named(shop, "Back In Stock")
    assert sorted(
        (e.get("userId") or e["context"]["traits"]["email"], e["properties"]["store_id"]) for e in events
    ) == [
        ("ann@example.com", "waw-centrum"),
        ("bob", "waw-centrum"),
    ]
    assert {e["_channel"] for e in events} == {"store"}
