"""Geofence pings: Store Entered / Exited once per visit; a pickup customer walking in becomes a store task."""

from __future__ import annotations

from accord.commerce import inventory, orders, presence
from accord.platform import Platform

from .conftest import events_named

CENTRUM = (52.22975, 21.01225)  # ~10 m from the store
FAR = (52.3, 21.1)


def test_enter_and_exit_once_per_visit(shop: Platform) -> None:
    s, j = shop.state, shop.journal
    first = presence.ping(s, j, "user_id:ann", *CENTRUM)
    assert first["entered"] == ["waw-centrum"] and first["pickup_arrivals"] == []
    assert presence.ping(s, j, "user_id:ann", *CENTRUM)["entered"] == []  # still inside: nothing new
    assert presence.ping(s, j, "user_id:ann", *FAR)["exited"] == ["waw-centrum"]
    assert presence.ping(s, j, "user_id:ann", *FAR)["exited"] == []
    entered = events_named(shop, "Store Entered")
    assert [(e["userId"], e["properties"]["store_id"], e["_channel"]) for e in entered] == [
        ("ann", "waw-centrum", "app")
    ]
    assert len(events_named(shop, "Store Exited")) == 1


def test_pickup_customer_arriving_tells_the_store(shop: Platform) -> None:
    """Story 13: the store learns that a customer with a pickup order walks in (by any of her identifiers)."""
    s, j = shop.state, shop.journal
    inventory.adjust(s, j, "waw-centrum", "BOOK-1", 2)
    order = orders.place_order(
        s,
        j,
        {
            "channel": "app",
            "fulfilment": "pickup",
            "location_id": "waw-centrum",
            "customer": "email:ann@example.com",
            "lines": [{"sku": "BOOK-1", "quantity": 1}],
        },
    )
    # the app knows her by user id; identity links it to her email
    from accord.collect.emit import emit

    with s.begin() as conn:
        emit(
            conn,
            j,
            "test-app",
            "app",
            [{"type": "identify", "userId": "ann-1", "traits": {"email": "ann@example.com"}}],
        )
    assert shop.processor.drain()
    result = presence.ping(s, j, "user_id:ann-1", *CENTRUM)
    assert [a["order_id"] for a in result["pickup_arrivals"]] == [order["id"]]
    tasks = presence.store_tasks(s, "waw-centrum")
    assert [(t["order_id"], t["kind"]) for t in tasks] == [(order["id"], "customer_arriving")]
    presence.complete_task(s, "waw-centrum", tasks[0]["id"])
    assert presence.store_tasks(s, "waw-centrum") == []
    arriving = events_named(shop, "Pickup Customer Arriving")
    assert len(arriving) == 1 and arriving[0]["_channel"] == "store"
    assert arriving[0]["properties"]["order_id"] == order["id"]
