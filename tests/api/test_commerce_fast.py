"""The lean front for coupons and points answers exactly like the documented Litestar routes.

The same scenario runs twice: through `CommerceFastPath` (as `accord serve` runs it) and through the bare Litestar
app (the OpenAPI routes). Both must give the same statuses, error codes and bodies, and the lean front must not
take requests it does not serve (a ledger read, a claim)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from accord.api.app import create_app
from accord.api.commerce_fast import CommerceFastPath
from accord.collect.emit import emit
from accord.config import load_settings
from accord.profiles import service as profiles

AUTH = {"Authorization": "Bearer secret-token"}


@pytest.fixture(params=["lean", "litestar"])
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestClient[Any]]:
    settings = load_settings(
        {"ACCORD_HOME": str(tmp_path), "ACCORD_ADMIN_TOKEN": "secret-token", "ACCORD_RESOLVER": "inline"}
    )
    app = create_app(settings)
    front = CommerceFastPath(app) if request.param == "lean" else app
    with TestClient(front) as test_client:  # type: ignore[arg-type]
        test_client.app_state = app.state  # type: ignore[attr-defined]
        yield test_client


def _profile(client: TestClient[Any], user: str) -> str:
    platform = client.app_state.platform  # type: ignore[attr-defined]
    with platform.state.begin() as conn:
        emit(conn, platform.journal, "test-crm", "crm", [{"type": "identify", "userId": user, "traits": {}}])
    platform.processor.wake()
    started = time.monotonic()
    while (pid := profiles.resolve(platform.state, platform.rules, f"user_id:{user}")) is None:
        assert time.monotonic() - started < 30, "the profile was never processed"
        time.sleep(0.02)
    return pid


def test_points_earn_and_burn_answer_like_the_documented_routes(client: TestClient[Any]) -> None:
    pid = _profile(client, "ann")
    earn = {"idempotency_key": "e1", "channel": "app", "points": 100}
    first = client.post(f"/api/v1/loyalty/{pid}/earn", json=earn, headers=AUTH)
    assert first.status_code == 201 and first.json()["balance_after"] == 100
    again = client.post(f"/api/v1/loyalty/{pid}/earn", json=earn, headers=AUTH)
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"] and again.json()["replayed"]
    burn = client.post(
        f"/api/v1/loyalty/{pid}/burn",
        json={"idempotency_key": "b1", "points": 60, "channel": "store", "store_id": "S1"},
        headers=AUTH,
    )
    assert burn.status_code == 201 and burn.json()["balance_after"] == 40
    broke = client.post(
        f"/api/v1/loyalty/{pid}/burn", json={"idempotency_key": "b2", "points": 41, "channel": "store"}, headers=AUTH
    )
    assert broke.status_code == 409
    assert broke.json()["error"] == {
        "code": "insufficient_points",
        "message": broke.json()["error"]["message"],
        "detail": {"balance": 40, "requested": 41},
    }
    unknown = client.post(
        "/api/v1/loyalty/01NOSUCHPROFILE00000000000/earn", json={**earn, "idempotency_key": "x"}, headers=AUTH
    )
    assert unknown.status_code == 404 and unknown.json()["error"]["code"]
    # bad bodies: a precise 400 in the error shape, nothing written
    wrong_type = client.post(
        f"/api/v1/loyalty/{pid}/burn", json={"idempotency_key": "b3", "points": "ten", "channel": "x"}, headers=AUTH
    )
    assert wrong_type.status_code == 400 and "points" in wrong_type.json()["error"]["message"]
    missing = client.post(f"/api/v1/loyalty/{pid}/earn", json={"channel": "app", "points": 1}, headers=AUTH)
    assert missing.status_code == 400 and "idempotency_key" in missing.json()["error"]["message"]
    not_json = client.post(f"/api/v1/loyalty/{pid}/earn", content=b"{nope", headers=AUTH)
    assert not_json.status_code == 400 and not_json.json()["error"]["code"]
    # no token, no write
    denied = client.post(f"/api/v1/loyalty/{pid}/earn", json={**earn, "idempotency_key": "e9"})
    assert denied.status_code == 401 and denied.json()["error"]["code"] == "unauthorized"
    # reads and other writes still go to the framework's routes
    ledger = client.get(f"/api/v1/loyalty/{pid}/ledger", headers=AUTH)
    assert ledger.status_code == 200 and [e["points"] for e in ledger.json()] == [-60, 100]
    assert client.get(f"/api/v1/loyalty/{pid}", headers=AUTH).json()["balance"] == 40


def test_coupons_validate_and_redeem_answer_like_the_documented_routes(client: TestClient[Any]) -> None:
    pid = _profile(client, "bea")
    offer = client.post(
        "/api/v1/offers",
        json={"name": "Ten off", "code_policy": "unique", "channels": ["store"], "min_basket_minor": 5000},
        headers=AUTH,
    ).json()
    code = client.post(f"/api/v1/offers/{offer['id']}/codes", json={"count": 1}, headers=AUTH).json()["codes"][0]
    basket = {"code": code, "channel": "store", "store_id": "S1", "profile_id": pid, "basket_minor": 9000}
    valid = client.post("/api/v1/coupons/validate", json=basket, headers=AUTH)
    assert valid.status_code == 200 and valid.json()["valid"] is True
    small = client.post("/api/v1/coupons/validate", json={**basket, "basket_minor": 100}, headers=AUTH)
    assert small.status_code == 200 and small.json()["valid"] is False and small.json()["problems"]
    web = client.post("/api/v1/coupons/validate", json={**basket, "channel": "web"}, headers=AUTH)
    assert web.json()["valid"] is False
    unknown = client.post("/api/v1/coupons/validate", json={**basket, "code": "NOSUCHCODE"}, headers=AUTH)
    assert unknown.status_code == 200 and unknown.json()["valid"] is False and unknown.json()["problems"]
    redeemed = client.post("/api/v1/coupons/redeem", json=basket, headers={**AUTH, "Idempotency-Key": "till-1"})
    assert redeemed.status_code == 201
    replay = client.post("/api/v1/coupons/redeem", json=basket, headers={**AUTH, "Idempotency-Key": "till-1"})
    assert replay.status_code == 200 and replay.json()["id"] == redeemed.json()["id"]
    second = client.post("/api/v1/coupons/redeem", json={**basket, "idempotency_key": "till-2"}, headers=AUTH)
    assert second.status_code == 409 and second.json()["error"]["code"]
    refused = client.post(
        "/api/v1/coupons/redeem", json={**basket, "basket_minor": 100, "idempotency_key": "till-3"}, headers=AUTH
    )
    assert refused.status_code in (409, 422) and refused.json()["error"]["code"]
    bad = client.post("/api/v1/coupons/validate", json={"code": 7, "channel": "store"}, headers=AUTH)
    assert bad.status_code == 400 and "code" in bad.json()["error"]["message"]
    assert client.post("/api/v1/coupons/validate", json=basket).status_code == 401
