"""Orders: placement with holds, channel prices, slots inside hours, transitions and events, expiry, returns."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from accord.commerce import inventory, orders, service
from accord.commerce.errors import Conflict, InsufficientStock, InvalidInput
from accord.platform import Platform
from accord.storage import utcnow

from .conftest import events_named


def _pickup(**extra: object) -> dict[str, object]:
    return {
        "channel": "web",
        "fulfilment": "pickup",
        "location_id": "waw-centrum",
        "customer": "email:ann@example.com",
        "lines": [{"sku": "BOOK-1", "quantity": 1}],
    } | extra


def test_pickup_order_lifecycle_with_events_and_stock(shop: Platform) -> None:
    s, j = shop.state, shop.journal
    inventory.adjust(s, j, "waw-centrum", "BOOK-1", 1)
    order = orders.place_order(s, j, _pickup(idempotency_key="web-1"))
    assert order["status"] == "placed" and order["total_minor"] == 4999  # the web price, not the store's 5999
    assert orders.place_order(s, j, _pickup(idempotency_key="web-1"))["id"] == order["id"]  # retried
    with pytest.raises(InsufficientStock):  # the last unit is held
        orders.place_order(s, j, _pickup(customer="email:bob@example.com"))
    assert events_named(shop, "Order Ready For Pickup") == []  # no "ready" notice before it is ready
    orders.transition(s, j, order["id"], "picking")
    ready = orders.transition(s, j, order["id"], "ready_for_pickup")
    assert ready["pickup_deadline"] is not None
    with pytest.raises(Conflict):
        orders.transition(s, j, order["id"], "shipped")
    orders.transition(s, j, order["id"], "picked_up")
    assert inventory.stock_level(s, "waw-centrum", "BOOK-1") | {"location_id": "", "sku": ""} == {
        "location_id": "",
        "sku": "",
        "on_hand": 0,
        "reserved": 0,
        "safety_stock": 0,
        "atp": 0,
    }
    names = [h["status"] for h in orders.get_order(s, order["id"])["history"]]
    assert names == ["placed", "picking", "ready_for_pickup", "picked_up"]
    placed = events_named(shop, "Order Placed")
    assert len(placed) == 1 and placed[0]["_channel"] == "web" and placed[0]["_revenue_minor"] == 4999
    ready_events = events_named(shop, "Order Ready For Pickup")
    assert len(ready_events) == 1 and ready_events[0]["_store_id"] == "waw-centrum"
    assert len(events_named(shop, "Order Picked Up")) == 1


def test_pickup_slot_must_be_inside_opening_hours(shop: Platform) -> None:
    s, j = shop.state, shop.journal
    inventory.adjust(s, j, "waw-mokotow", "BOOK-1", 5)
    warsaw = ZoneInfo("Europe/Warsaw")
    day = (utcnow() + timedelta(days=1)).astimezone(warsaw).date()
    while day.weekday() == 6:  # closed on Sundays
        day += timedelta(days=1)
    at = datetime(day.year, day.month, day.day, 10, 0, tzinfo=warsaw)
    ok = orders.place_order(s, j, _pickup(location_id="waw-mokotow", pickup_slot_start=at.isoformat()))
    assert ok["pickup_slot_start"] == at.astimezone(UTC)
    late = datetime(day.year, day.month, day.day, 20, 45, tzinfo=warsaw)  # 30-minute slot runs past 21:00
    with pytest.raises(Conflict, match="opening hours"):
        orders.place_order(s, j, _pickup(location_id="waw-mokotow", pickup_slot_start=late.isoformat()))
    with pytest.raises(Conflict, match="does not offer pickup"):
        orders.place_order(s, j, _pickup(location_id="krk-rynek"))
    with pytest.raises(InvalidInput):
        orders.place_order(s, j, _pickup(pickup_slot_start="2020-01-01T10:00:00+00:00"))


def test_uncollected_pickup_expires_and_releases_stock(shop: Platform) -> None:
    s, j = shop.state, shop.journal
    inventory.adjust(s, j, "waw-centrum", "LAMP-1", 1)
    inventory.subscribe_back_in_stock(s, "LAMP-1", "user_id:zoe", "waw-centrum")
    order = orders.place_order(s, j, _pickup(lines=[{"sku": "LAMP-1", "quantity": 1}]))
    orders.transition(s, j, order["id"], "ready_for_pickup")
    assert orders.expire_uncollected(s, j) == 0
    assert orders.expire_uncollected(s, j, now=utcnow() + timedelta(hours=73)) == 1
    assert orders.get_order(s, order["id"])["status"] == "expired"
    assert inventory.stock_level(s, "waw-centrum", "LAMP-1")["atp"] == 1
    assert len(events_named(shop, "Order Expired")) == 1
    assert [e["userId"] for e in events_named(shop, "Back In Stock")] == ["zoe"]


def test_online_order_returned_in_a_store(shop: Platform) -> None:
    """Story 17: stock comes back at the store that took the return; revenue follows (negative refund)."""
    s, j = shop.state, shop.journal
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
    assert order["total_minor"] == 2 * 4999 + 19900
    with pytest.raises(Conflict, match="only fulfilled"):
        orders.return_order(s, j, order["id"], {"location_id": "waw-mokotow"})
    orders.transition(s, j, order["id"], "shipped")
    orders.transition(s, j, order["id"], "delivered")
    ret = orders.return_order(
        s,
        j,
        order["id"],
        {
            "location_id": "waw-mokotow",
            "channel": "store",
            "lines": [{"sku": "BOOK-1", "quantity": 1}],
            "idempotency_key": "ret-1",
        },
    )
    assert ret["refund_minor"] == 4999
    again = orders.return_order(s, j, order["id"], {"location_id": "waw-mokotow", "idempotency_key": "ret-1"})
    assert again["id"] == ret["id"]
    assert inventory.stock_level(s, "waw-mokotow", "BOOK-1")["on_hand"] == 1
    assert inventory.stock_level(s, "online", "BOOK-1")["on_hand"] == 3
    rest = orders.return_order(s, j, order["id"], {"location_id": "waw-mokotow", "channel": "store"})
    assert rest["refund_minor"] == 4999 + 19900
    final = orders.get_order(s, order["id"])
    assert final["status"] == "returned" and final["refunded_minor"] == final["total_minor"]
    with pytest.raises(Conflict):
        orders.return_order(s, j, order["id"], {"location_id": "waw-mokotow"})
    refunded = events_named(shop, "Order Refunded")
    assert [e["_revenue_minor"] for e in refunded] == [-4999, -(4999 + 19900)]
    assert {(e["_channel"], e["_store_id"]) for e in refunded} == {("store", "waw-mokotow")}
    returned = events_named(shop, "Order Returned")
    assert returned[0]["properties"]["products"] == [{"sku": "BOOK-1", "quantity": 1, "price": 49.99}]
    assert returned[0]["properties"]["order_store_id"] == "online"


def test_fulfilment_types_and_channels(shop: Platform) -> None:
    s, j = shop.state, shop.journal
    inventory.adjust(s, j, "wh-1", "LAMP-1", 5)
    inventory.adjust(s, j, "waw-centrum", "LAMP-1", 5)
    delivery = orders.place_order(
        s,
        j,
        {
            "channel": "store",
            "fulfilment": "store_delivery",
            "location_id": "wh-1",
            "origin_location_id": "krk-rynek",
            "lines": [{"sku": "LAMP-1", "quantity": 1}],
            "customer": "loyalty_card:LC-1",
        },
    )
    assert delivery["origin_location_id"] == "krk-rynek"
    sfs = orders.place_order(
        s,
        j,
        {
            "channel": "call_center",
            "fulfilment": "ship_from_store",
            "location_id": "waw-centrum",
            "lines": [{"sku": "LAMP-1", "quantity": 2}],
        },
    )
    orders.transition(s, j, sfs["id"], "cancelled")
    assert inventory.stock_level(s, "waw-centrum", "LAMP-1")["atp"] == 5
    with pytest.raises(InvalidInput):
        orders.place_order(s, j, {"channel": "fax", "fulfilment": "ship", "location_id": "wh-1", "lines": []})
    placed = events_named(shop, "Order Placed")
    assert [e["_channel"] for e in placed] == ["store", "call_center"]


def test_open_pickup_orders_follow_the_profile(shop: Platform) -> None:
    s, j = shop.state, shop.journal
    inventory.adjust(s, j, "waw-centrum", "BOOK-1", 3)
    mine = orders.place_order(s, j, _pickup(customer="email:ann@example.com"))
    orders.place_order(s, j, _pickup(customer="email:bob@example.com"))
    assert shop.processor.drain()
    from accord.profiles import service as profiles

    pid = profiles.resolve(s, shop.rules, "email:ann@example.com")
    assert pid is not None
    found = service.open_pickup_orders(s, pid, "waw-centrum")
    assert [o["id"] for o in found] == [mine["id"]]
    assert service.open_pickup_orders(s, pid, "waw-mokotow") == []
    assert service.store(s, "waw-mokotow")["opening_hours"]["sun"] is None
