"""Over real HTTP against `accord serve` on SQLite and PostgreSQL: no overselling under 100 parallel reservations,
and stories 12 (only what is here), 13 (buy online, pick up in store) and 17 (return anywhere) end to end."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests.conftest import PG_URL, LiveServer, _pg_available

from .conftest import STORES

CENTRUM = (52.22975, 21.01225)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server per engine for this module; every test works on its own fresh SKU."""
    env: dict[str, str] = {}
    schema = None
    if request.param == "postgres":
        reason = _pg_available()
        if reason is not None:
            if os.environ.get("CI") == "true":
                pytest.fail(f"PostgreSQL is required in CI but unreachable: {reason}")
            pytest.skip(f"PostgreSQL unreachable: {reason}")
        schema = "t_" + secrets.token_hex(6)
        admin = sa.create_engine(PG_URL)
        with admin.begin() as conn:
            conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
        sep = "&" if "?" in PG_URL else "?"
        env["ACCORD_STATE_URL"] = f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    srv = LiveServer(tmp_path_factory.mktemp("commerce") / "home", env).start()
    with srv.admin() as client:
        assert client.post("/api/v1/locations", json=STORES).status_code == 200
    yield srv
    srv.stop()
    if schema:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


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
        names = [e["event"] for e in timeline["events"]]
        assert names == [
            "Order Placed",
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
        assert ("Order Placed", "web", 39800) in money and ("Order Refunded", "store", -19900) in money


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
