"""Loyalty over real HTTP against a live server, on SQLite and on PostgreSQL: story 16 and 50 burns at once."""

from __future__ import annotations

import threading
import time
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


def customer(server: LiveServer, user: str) -> tuple[str, str]:
    """A customer known to the platform through the app's Segment source; returns (profile id, write key)."""
    key = server.add_source("app", "app")
    response = httpx.post(f"{server.url}/v1/identify", json={"userId": user, "traits": {}}, auth=(key, ""))
    response.raise_for_status()
    server.wait_processed()
    with server.admin() as client:
        found = client.get("/api/v1/profiles/resolve", params={"identifier": f"user_id:{user}"}).json()
    return str(found["profile_id"]), key


def parallel(server: LiveServer, n: int, call: Any) -> list[httpx.Response]:
    barrier = threading.Barrier(n)

    def one(i: int) -> httpx.Response:
        with server.admin() as client:
            barrier.wait()
            return call(client, i)  # type: ignore[no-any-return]

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def test_fifty_parallel_burns_never_take_the_balance_below_zero(server: LiveServer) -> None:
    pid, _ = customer(server, "ann")
    with server.admin() as client:
        earned = client.post(
            f"/api/v1/loyalty/{pid}/earn", json={"idempotency_key": "e", "channel": "web", "points": 1000}
        )
        assert earned.status_code == 201
    responses = parallel(
        server,
        50,
        lambda c, i: c.post(
            f"/api/v1/loyalty/{pid}/burn", json={"idempotency_key": f"b{i}", "points": 30, "channel": "store"}
        ),
    )
    ok = [r for r in responses if r.status_code == 201]
    refused = [r for r in responses if r.status_code == 409]
    assert len(ok) == 33 and len(refused) == 17  # 33 x 30 = 990 <= 1000 < 34 x 30
    assert {r.json()["error"]["code"] for r in refused} == {"insufficient_points"}
    assert all(r.json()["balance_after"] >= 0 for r in ok)
    with server.admin() as client:
        account = client.get(f"/api/v1/loyalty/{pid}").json()
        ledger = client.get(f"/api/v1/loyalty/{pid}/ledger", params={"limit": 1000}).json()
    assert account["balance"] == 10 == sum(e["points"] for e in ledger)
    assert sorted(e["balance_after"] for e in ledger if e["kind"] == "burn") == list(range(10, 1000, 30))


def test_story_16_points_earned_in_the_app_are_spendable_at_the_till_a_second_later(server: LiveServer) -> None:
    pid, app_key = customer(server, "bea")
    with server.admin() as client:
        client.put("/api/v1/loyalty/program", json={
            "points_per_unit": {"default": 1}, "channel_multipliers": {"app": 2},
            "tiers": [{"name": "member", "threshold": 0}, {"name": "silver", "threshold": 200}],
        }).raise_for_status()  # fmt: skip
        # an order completed in the app (Segment event): the listener earns the points
        httpx.post(
            f"{server.url}/v1/track",
            json={"userId": "bea", "event": "Order Completed",
                  "properties": {"order_id": "app-1", "revenue": 120.00, "currency": "PLN"}},
            auth=(app_key, ""),
        ).raise_for_status()  # fmt: skip
        started = time.monotonic()
        while client.get(f"/api/v1/loyalty/{pid}").json()["balance"] == 0:
            assert time.monotonic() - started < 30, "the order's points never arrived"
            time.sleep(0.05)
        account = client.get(f"/api/v1/loyalty/{pid}").json()
        assert (account["balance"], account["tier"]) == (240, "silver")
        # earned in the app through the API, spent at the till right away
        bonus = {"idempotency_key": "app-bonus", "channel": "app", "amount_minor": 1000, "currency": "PLN"}
        client.post(f"/api/v1/loyalty/{pid}/earn", json=bonus).raise_for_status()
        till = client.post(
            f"/api/v1/loyalty/{pid}/burn",
            json={"idempotency_key": "till-7", "points": 260, "channel": "store", "store_id": "S1"},
        )
        assert till.status_code == 201 and till.json()["balance_after"] == 0
        retry = client.post(
            f"/api/v1/loyalty/{pid}/burn", json={"idempotency_key": "till-7", "points": 260, "channel": "store"}
        )
        assert retry.status_code == 200 and retry.json()["id"] == till.json()["id"]
        broke = client.post(
            f"/api/v1/loyalty/{pid}/burn", json={"idempotency_key": "t8", "points": 1, "channel": "store"}
        )
        assert broke.status_code == 409 and broke.json()["error"]["detail"] == {"balance": 0, "requested": 1}
        # a reward cannot be spent twice
        client.post(f"/api/v1/loyalty/{pid}/earn", json={"idempotency_key": "e3", "channel": "web", "points": 100})
        reward = client.post("/api/v1/loyalty/rewards", json={"name": "Coffee", "cost_points": 100}).json()
        claim = client.post(
            f"/api/v1/loyalty/{pid}/rewards/{reward['id']}/claim", json={"idempotency_key": "c1", "channel": "app"}
        ).json()
    uses = parallel(
        server, 2, lambda c, i: c.post(f"/api/v1/loyalty/claims/{claim['id']}/use", json={"channel": "store"})
    )
    assert sorted(r.status_code for r in uses) == [200, 409]
    server.wait_processed()
    with server.admin() as client:
        assert client.get(f"/api/v1/loyalty/{pid}").json()["balance"] == 0
        events = client.get(f"/api/v1/profiles/{pid}/events", params={"limit": 100}).json()["events"]
        names = [(e["event"], e["channel"]) for e in events if (e["event"] or "").startswith(("Loyalty", "Reward"))]
        assert ("Loyalty Points Earned", "app") in names and ("Loyalty Points Spent", "store") in names
        assert ("Reward Used", "store") in names and ("Loyalty Tier Changed", "app") in names
        assert client.get("/api/v1/loyalty/01NOSUCHPROFILE00000000000").status_code == 404
        bad = client.post(
            f"/api/v1/loyalty/{pid}/burn", json={"idempotency_key": "z", "points": -5, "channel": "store"}
        )
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_points"
