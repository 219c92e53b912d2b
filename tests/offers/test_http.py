"""Coupons over real HTTP against a live server, on SQLite and on PostgreSQL: story 15 and two tills at once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer


@pytest.fixture
def server(tmp_path: Path, state_url: str) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path / "home", {"ACCORD_STATE_URL": state_url}).start()
    yield live
    live.stop()


def customer(server: LiveServer, user: str) -> str:
    """A customer known to the platform (identified through the Segment API); returns the profile id."""
    key = server.add_source(f"app-{user}", "app")
    httpx.post(
        f"{server.url}/v1/identify", json={"userId": user, "traits": {"name": user}}, auth=(key, "")
    ).raise_for_status()
    server.wait_processed()
    with server.admin() as client:
        return str(
            client.get("/api/v1/profiles/resolve", params={"identifier": f"user_id:{user}"}).json()["profile_id"]
        )


def parallel(server: LiveServer, n: int, call: Any) -> list[httpx.Response]:
    """N requests released together (a barrier), each on its own connection."""
    barrier = threading.Barrier(n)

    def one(i: int) -> httpx.Response:
        with server.admin() as client:
            barrier.wait()
            return call(client, i)  # type: ignore[no-any-return]

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def test_fifty_tills_redeem_one_single_use_code_exactly_once(server: LiveServer) -> None:
    with server.admin() as client:
        offer = client.post("/api/v1/offers", json={"name": "One per code", "code_policy": "unique"}).json()
        code = client.post(f"/api/v1/offers/{offer['id']}/codes", json={"count": 1}).json()["codes"][0]
    responses = parallel(
        server,
        50,
        lambda c, i: c.post(
            "/api/v1/coupons/redeem",
            json={"code": code, "channel": "store", "store_id": f"S{i % 3}", "idempotency_key": f"till-{i}"},
        ),
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(201) == 1 and statuses.count(409) == 49, statuses
    assert {r.json()["error"]["code"] for r in responses if r.status_code == 409} == {"already_redeemed"}
    with server.admin() as client:
        assert client.get(f"/api/v1/offers/{offer['id']}").json()["redemptions"] == 1
        winner = next(r for r in responses if r.status_code == 201).json()
        again = client.post(  # the winning till retries: same redemption, not a 409
            "/api/v1/coupons/redeem",
            json={"code": code, "channel": "store", "idempotency_key": winner["idempotency_key"]},
        )
        assert again.status_code == 200 and again.json()["id"] == winner["id"]


def test_story_15_the_push_coupon_the_till_knows_about(server: LiveServer) -> None:
    sarah = customer(server, "sarah")
    with server.admin() as client:
        offer = client.post(
            "/api/v1/offers",
            json={"name": "10% today at Mokotów", "code_policy": "unique", "discount_value": 1000, "currency": "PLN",
                  "stores": ["S-MOK"], "channels": ["store", "app"], "min_basket_minor": 5000},
        ).json()  # fmt: skip
        client.post(f"/api/v1/offers/{offer['id']}/codes", json={"count": 20}).raise_for_status()
        # she enters the store; messaging pushes her a code (its delivery id is recorded with the assignment)
        given = client.post(
            f"/api/v1/offers/{offer['id']}/assign",
            json={"profile_id": sarah, "message_id": "dlv-123", "delivery_channel": "push",
                  "note": "when you entered the store"},
        ).json()  # fmt: skip
        # the associate's screen: active here and now, and why
        screen = client.get("/api/v1/coupons/active", params={"profile_id": sarah, "store_id": "S-MOK"}).json()
        assert [o["code"] for o in screen["offers"]] == [given["code"]]
        why = screen["offers"][0]["why"]
        assert why[0].startswith("sent by push on ") and "valid at store S-MOK" in why
        assert screen["offers"][0]["message_id"] == "dlv-123"
        elsewhere = client.get("/api/v1/coupons/active", params={"profile_id": sarah, "store_id": "S-OTHER"}).json()
        assert elsewhere["offers"] == []
        # the till validates with the basket: valid, and says why not when the basket is too small
        till = {"code": given["code"], "channel": "store", "store_id": "S-MOK", "profile_id": sarah, "currency": "PLN"}
        small = client.post("/api/v1/coupons/validate", json={**till, "basket_minor": 4000}).json()
        assert not small["valid"] and small["problems"][0]["code"] == "basket_too_small"
        ok = client.post("/api/v1/coupons/validate", json={**till, "basket_minor": 8000}).json()
        assert ok["valid"] and ok["discount_minor"] == 800
        bad = client.post("/api/v1/coupons/redeem", json={**till, "basket_minor": 4000, "idempotency_key": "k0"})
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "basket_too_small"
        assert bad.json()["error"]["problems"][0]["code"] == "basket_too_small"
    # the button pressed twice, on two tills at once
    responses = parallel(
        server,
        2,
        lambda c, i: c.post(
            "/api/v1/coupons/redeem", json={**till, "basket_minor": 8000}, headers={"Idempotency-Key": f"till-{i}"}
        ),
    )
    assert sorted(r.status_code for r in responses) == [201, 409]
    server.wait_processed()
    with server.admin() as client:
        assert (
            client.get("/api/v1/coupons/active", params={"profile_id": sarah, "store_id": "S-MOK"}).json()["offers"]
            == []
        )
        events = client.get(f"/api/v1/profiles/{sarah}/events", params={"limit": 100}).json()["events"]
        redeemed = [e for e in events if e["event"] == "Coupon Redeemed"]
        assert len(redeemed) == 1 and redeemed[0]["channel"] == "store"
        # errors keep the platform's shape
        missing = client.post("/api/v1/coupons/redeem", json={"code": "NOPE", "channel": "web", "idempotency_key": "x"})
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_code"
        no_key = client.post("/api/v1/coupons/redeem", json={"code": given["code"], "channel": "web"})
        assert no_key.status_code == 400 and no_key.json()["error"]["code"] == "invalid_idempotency_key"
        assert client.post("/api/v1/coupons/validate", json={"channel": "web"}).status_code == 400
    assert httpx.post(f"{server.url}/api/v1/coupons/validate", json=till).status_code == 401
