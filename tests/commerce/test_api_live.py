"""Over real HTTP against `accord serve` on SQLite and PostgreSQL: no overselling under 100 parallel reservations,
and stories 12, 13, 15 (the associate lookup) and 17 end to end."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer
from tests.offers.http_server import module_server

from .conftest import STORES

CENTRUM = (52.22975, 21.01225)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server per engine for this module, with the stores; every test works on its own fresh SKU."""
    servers = module_server(request, tmp_path_factory)
    srv = next(servers)
    with srv.admin() as client:
        assert client.post("/api/v1/locations", json=STORES).status_code == 200
    yield srv
    servers.close()  # stops the server and drops its PostgreSQL schema


def _product(client: httpx.Client, price_minor: int = 19900) -> str:
    sku = "SKU-" + secrets.token_hex(4)
    body = [{"sku": sku, "name": "Lamp " + sku, "price_minor": price_minor, "currency": "PLN"}]
    assert client.post("/api/v1/catalog", json=body).status_code == 200
    return sku


def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def test_100_parallel_reservations_for_10_units_exactly_10_succeed(server: LiveServer) -> None:
    with server.admin() as client:
        sku = _product(client)
        _ok(client.post(f"/api/v1/stock/waw-centrum/{sku}", json={"delta": 10}))

    async def attempt(client: httpx.AsyncClient, i: int) -> int:
        body = {"location_id": "waw-centrum", "sku": sku, "quantity": 1, "customer": f"user_id:c{i}"}
        return (await client.post("/api/v1/reservations", json=body)).status_code

    async def run() -> list[int]:
        headers = {"Authorization": f"Bearer {server.token}"}
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=60, limits=limits) as client:
            return list(await asyncio.gather(*(attempt(client, i) for i in range(100))))

    codes = asyncio.run(run())
    assert codes.count(201) == 10 and codes.count(409) == 90, sorted(set(codes))
    with server.admin() as client:
        level = _ok(client.get(f"/api/v1/stock/waw-centrum/{sku}"))
        assert (level["on_hand"], level["reserved"], level["atp"]) == (10, 10, 0)
        error = client.post("/api/v1/reservations", json={"location_id": "waw-centrum", "sku": sku}).json()
        assert error["error"]["code"] == "insufficient_stock"


def test_story_12_only_what_is_here_nearest_first(server: LiveServer) -> None:
    with server.admin() as client:
        sku = _product(client)
        for store, units in (("waw-mokotow", 3), ("krk-rynek", 1), ("lon-oxford", 5), ("waw-centrum", 0)):
            if units:
                _ok(client.post(f"/api/v1/stock/{store}/{sku}", json={"delta": units}))
        _ok(client.post(f"/api/v1/stock/krk-rynek/{sku}", json={"safety_stock": 1}))  # its last unit is not for sale
        found = _ok(client.get("/api/v1/availability", params={"sku": sku, "lat": CENTRUM[0], "lon": CENTRUM[1]}))
        assert [(f["location_id"], f["atp"]) for f in found["locations"]] == [("waw-mokotow", 3), ("lon-oxford", 5)]
        assert found["locations"][0]["distance_m"] < found["locations"][1]["distance_m"]
        bad = client.get("/api/v1/availability", params={"sku": sku, "lat": 100, "lon": 0})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_coordinates"
        missing = client.get("/api/v1/availability", params={"sku": sku})
        assert missing.status_code == 400 and "error" in missing.json()


def test_story_13_buy_online_pick_up_in_store(server: LiveServer) -> None:
    with server.admin() as client:
        sku = _product(client)
        _ok(client.post(f"/api/v1/stock/waw-centrum/{sku}", json={"delta": 1}))
        order_body = {
            "channel": "web",
            "fulfilment": "pickup",
            "location_id": "waw-centrum",
            "customer": "email:Ann@Example.com",
            "lines": [{"sku": sku, "quantity": 1}],
        }
        order = _ok(client.post("/api/v1/orders", json=order_body, headers={"Idempotency-Key": "o-1"}), 201)
        again = _ok(client.post("/api/v1/orders", json=order_body, headers={"Idempotency-Key": "o-1"}), 201)
        assert again["id"] == order["id"]
        other = client.post("/api/v1/orders", json=order_body | {"customer": "email:bob@example.com"})
        assert other.status_code == 409 and other.json()["error"]["code"] == "insufficient_stock"  # the last unit
        # she walks in: the store sees her coming
        ping = _ok(
            client.post(
                "/api/v1/locations/ping",
                json={"identifier": "email:ann@example.com", "lat": CENTRUM[0], "lon": CENTRUM[1]},
            )
        )
        assert ping["entered"] == ["waw-centrum"] and ping["pickup_arrivals"][0]["order_id"] == order["id"]
        tasks = _ok(client.get("/api/v1/stores/waw-centrum/tasks"))
        assert [t["order_id"] for t in tasks] == [order["id"]]
        assert [o["id"] for o in _ok(client.get("/api/v1/stores/waw-centrum/pickups"))] == [order["id"]]
        _ok(client.post(f"/api/v1/orders/{order['id']}/status", json={"status": "ready_for_pickup"}))
        done = _ok(client.post(f"/api/v1/orders/{order['id']}/status", json={"status": "picked_up"}))
        assert done["status"] == "picked_up"
        wrong = client.post(f"/api/v1/orders/{order['id']}/status", json={"status": "shipped"})
        assert wrong.status_code == 409 and wrong.json()["error"]["code"] == "invalid_transition"
        server.wait_processed()
        pid = _ok(client.get("/api/v1/profiles/resolve", params={"identifier": "email:ann@example.com"}))["profile_id"]
        timeline = _ok(client.get(f"/api/v1/profiles/{pid}/events", params={"limit": 100}))
        # loyalty adds its own events (points earned on Order Completed) a moment later; they are not this story
        names = [e["event"] for e in timeline["events"] if not e["event"].startswith("Loyalty ")]
        assert names == [
            "Order Placed",
            "Order Completed",
            "Store Entered",
            "Pickup Customer Arriving",
            "Order Ready For Pickup",
            "Order Picked Up",
        ]


def test_story_17_online_order_returned_in_store(server: LiveServer) -> None:
    with server.admin() as client:
        sku = _product(client)
        _ok(client.post(f"/api/v1/stock/online/{sku}", json={"delta": 2}))
        order = _ok(
            client.post(
                "/api/v1/orders",
                json={
                    "channel": "web",
                    "fulfilment": "ship",
                    "location_id": "online",
                    "customer": "user_id:ann",
                    "lines": [{"sku": sku, "quantity": 2}],
                },
            ),
            201,
        )
        for status in ("shipped", "delivered"):
            _ok(client.post(f"/api/v1/orders/{order['id']}/status", json={"status": status}))
        ret = _ok(
            client.post(
                f"/api/v1/orders/{order['id']}/returns",
                json={"location_id": "waw-mokotow", "channel": "store", "lines": [{"sku": sku, "quantity": 1}]},
                headers={"Idempotency-Key": "r-1"},
            ),
            201,
        )
        assert ret["refund_minor"] == 19900
        assert _ok(client.get(f"/api/v1/stock/waw-mokotow/{sku}"))["on_hand"] == 1  # stock follows
        server.wait_processed()
        pid = _ok(client.get("/api/v1/profiles/resolve", params={"identifier": "user_id:ann"}))["profile_id"]
        events = _ok(client.get(f"/api/v1/profiles/{pid}/events", params={"limit": 100}))["events"]
        money = [(e["event"], e["channel"], e.get("revenue_minor")) for e in events]
        assert ("Order Completed", "web", 39800) in money and ("Order Returned", "store", 19900) in money


def test_story_14_back_in_stock_once(server: LiveServer) -> None:
    with server.admin() as client:
        sku = _product(client)
        body = {"sku": sku, "customer": "email:zoe@example.com", "location_id": "waw-mokotow"}
        _ok(client.post("/api/v1/back-in-stock", json=body), 201)
        _ok(client.post("/api/v1/back-in-stock", json=body), 201)  # asking twice is one subscription
        _ok(client.post(f"/api/v1/stock/waw-mokotow/{sku}", json={"delta": 2}))  # 0 -> 2: back
        _ok(client.post(f"/api/v1/stock/waw-mokotow/{sku}", json={"delta": 1}))  # 2 -> 3: not "back" again
        server.wait_processed()
        pid = _ok(client.get("/api/v1/profiles/resolve", params={"identifier": "email:zoe@example.com"}))
        events = _ok(client.get(f"/api/v1/profiles/{pid['profile_id']}/events", params={"limit": 100}))["events"]
        assert [(e["event"], e["store_id"]) for e in events] == [("Back In Stock", "waw-mokotow")]


def test_reservation_and_availability_errors_have_the_error_shape(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as anonymous:
        denied = anonymous.post("/api/v1/reservations", json={"location_id": "waw-centrum", "sku": "X"})
        assert denied.status_code == 401 and denied.json()["error"]["code"] == "unauthorized"
        assert anonymous.get("/api/v1/availability", params={"sku": "X", "lat": 1, "lon": 1}).status_code == 401
    with server.admin() as client:
        sku = _product(client)
        _ok(client.post(f"/api/v1/stock/waw-centrum/{sku}", json={"delta": 3}))
        body = {"location_id": "waw-centrum", "sku": sku, "quantity": 2}
        first = _ok(client.post("/api/v1/reservations", json=body, headers={"Idempotency-Key": "same"}), 201)
        again = _ok(client.post("/api/v1/reservations", json=body, headers={"Idempotency-Key": "same"}), 201)
        assert first["id"] == again["id"] and first["expires_at"]
        for bad, status, code in (
            ({"location_id": "waw-centrum", "sku": sku, "quantity": "two"}, 400, "bad_request"),
            ({"location_id": "waw-centrum", "sku": sku, "quantity": 0}, 400, "invalid_quantity"),
            ({"location_id": "nowhere", "sku": sku}, 404, "unknown_location"),
            ({"location_id": "waw-centrum", "sku": sku, "customer": "nonsense"}, 400, "invalid_identifier"),
            ({"location_id": "waw-centrum", "sku": sku, "quantity": 2}, 409, "insufficient_stock"),
        ):
            answer = client.post("/api/v1/reservations", json=bad)
            assert (answer.status_code, answer.json()["error"]["code"]) == (status, code), answer.text
        released = _ok(client.post(f"/api/v1/reservations/{first['id']}/release"))
        assert released["status"] == "released"
        bad_query = client.get("/api/v1/availability", params={"sku": sku, "lat": "north", "lon": 1})
        assert bad_query.status_code == 400 and bad_query.json()["error"]["code"] in ("bad_request", "invalid_input")


def test_appointments_and_pickup_slots_over_http(server: LiveServer) -> None:
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    warsaw = ZoneInfo("Europe/Warsaw")
    day = (datetime.now(warsaw) + timedelta(days=2)).date()
    while day.weekday() == 6:
        day += timedelta(days=1)
    with server.admin() as client:
        slots = _ok(client.get("/api/v1/locations/waw-centrum/appointment-slots", params={"day": day.isoformat()}))
        assert slots and all(s["available"] == 2 for s in slots)
        start = slots[0]["starts_at"]
        body = {"location_id": "waw-centrum", "starts_at": start, "service": "fitting", "customer": "user_id:amy"}
        booked = _ok(client.post("/api/v1/appointments", json=body, headers={"Idempotency-Key": "ap-1"}), 201)
        assert booked["local_start"].startswith(day.isoformat())
        _ok(client.post("/api/v1/appointments", json=body | {"customer": "user_id:ben"}), 201)
        full = client.post("/api/v1/appointments", json=body | {"customer": "user_id:cat"})
        assert full.status_code == 409 and full.json()["error"]["code"] == "slot_full"
        _ok(client.post(f"/api/v1/appointments/{booked['id']}/cancel"))
        _ok(client.post("/api/v1/appointments", json=body | {"customer": "user_id:cat"}), 201)
        sku = _product(client)
        _ok(client.post(f"/api/v1/stock/waw-mokotow/{sku}", json={"delta": 1}))
        sunday = day + timedelta(days=(6 - day.weekday()))
        closed = client.post(
            "/api/v1/orders",
            json={
                "channel": "app",
                "fulfilment": "pickup",
                "location_id": "waw-mokotow",
                "customer": "user_id:amy",
                "pickup_slot_start": datetime(sunday.year, sunday.month, sunday.day, 12, tzinfo=warsaw).isoformat(),
                "lines": [{"sku": sku, "quantity": 1}],
            },
        )
        assert closed.status_code == 409 and closed.json()["error"]["code"] == "slot_outside_hours"


def test_story_15_the_associate_lookup_by_loyalty_card_shows_points_offers_and_pickups_here(
    server: LiveServer,
) -> None:
    key = server.add_source("app-story15", "app")
    identify = {
        "userId": "sarah-15",
        "traits": {"first_name": "Sarah", "last_name": "Nowak", "locale": "pl"},
        "context": {"externalIds": [{"type": "loyalty_card", "id": "CARD-1515", "collection": "users"}]},
    }
    httpx.post(f"{server.url}/v1/identify", json=identify, auth=(key, "")).raise_for_status()
    server.wait_processed()
    with server.admin() as client:
        pid = _ok(client.get("/api/v1/profiles/resolve", params={"identifier": "loyalty_card:CARD-1515"}))
        sarah = pid["profile_id"]
        earn = {"idempotency_key": "s15-earn", "channel": "app", "points": 120}
        _ok(client.post(f"/api/v1/loyalty/{sarah}/earn", json=earn), 201)
        offer = client.post(
            "/api/v1/offers",
            json={"name": "10% at Centrum", "code_policy": "unique", "discount_value": 1000, "currency": "PLN",
                  "stores": ["waw-centrum"], "channels": ["store"]},
        ).json()  # fmt: skip
        client.post(f"/api/v1/offers/{offer['id']}/codes", json={"count": 5}).raise_for_status()
        given = client.post(
            f"/api/v1/offers/{offer['id']}/assign",
            json={"profile_id": sarah, "message_id": "dlv-15", "delivery_channel": "push"},
        ).json()
        sku = _product(client)
        _ok(client.post(f"/api/v1/stock/waw-centrum/{sku}", json={"delta": 2}))
        _ok(client.post(f"/api/v1/stock/waw-mokotow/{sku}", json={"delta": 2}))
        order = {"channel": "web", "fulfilment": "pickup", "customer": "user_id:sarah-15",
                 "lines": [{"sku": sku, "quantity": 1}]}  # fmt: skip
        here = _ok(client.post("/api/v1/orders", json=order | {"location_id": "waw-centrum"}), 201)
        _ok(client.post("/api/v1/orders", json=order | {"location_id": "waw-mokotow"}), 201)  # another store

        screen = _ok(client.get("/api/v1/store/waw-centrum/customer", params={"identifier": "loyalty_card:CARD-1515"}))
        assert screen["customer"]["profile_id"] == sarah and screen["customer"]["name"] == "Sarah Nowak"
        assert "CARD-1515" in json.dumps(screen["customer"]["identifiers"])
        assert screen["points"]["balance"] == 120
        assert [(o["code"], o["message_id"]) for o in screen["offers"]] == [(given["code"], "dlv-15")]
        assert screen["offers"][0]["why"][0].startswith("sent by push")
        assert [o["id"] for o in screen["pickup_orders"]] == [here["id"]]  # not the order at Mokotów
        elsewhere = _ok(
            client.get("/api/v1/store/waw-mokotow/customer", params={"identifier": "loyalty_card:CARD-1515"})
        )
        assert elsewhere["offers"] == [] and len(elsewhere["pickup_orders"]) == 1

        for params, store, status, code in (
            ({"identifier": "loyalty_card:NOPE"}, "waw-centrum", 404, "unknown_customer"),
            ({"identifier": "loyalty_card:CARD-1515"}, "nowhere", 404, "unknown_location"),
            ({"identifier": "nonsense"}, "waw-centrum", 400, "invalid_identifier"),
        ):
            answer = client.get(f"/api/v1/store/{store}/customer", params=params)
            assert (answer.status_code, answer.json()["error"]["code"]) == (status, code), answer.text
