"""Admin API: bearer token, error shape, OpenAPI document, pagination; served by the real app in-process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient

from accord.api.app import create_app
from accord.api.fastpath import CollectFastPath
from accord.config import load_settings

AUTH = {"Authorization": "Bearer secret-token"}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = load_settings(
        {"ACCORD_HOME": str(tmp_path), "ACCORD_ADMIN_TOKEN": "secret-token", "ACCORD_RESOLVER": "inline"}
    )
    app = create_app(settings)
    with TestClient(CollectFastPath(app)) as test_client:  # type: ignore[arg-type]
        test_client.app_state = app.state  # type: ignore[attr-defined]
        yield test_client


def test_admin_endpoints_need_the_bearer_token(client: TestClient) -> None:
    assert client.get("/api/v1/health").status_code == 200  # liveness is public
    denied = client.get("/api/v1/stats")
    assert denied.status_code == 401 and denied.json()["error"]["code"] == "unauthorized"
    assert client.get("/api/v1/stats", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/api/v1/stats", headers=AUTH).status_code == 200


def test_openapi_describes_every_endpoint(client: TestClient) -> None:
    doc = client.get("/api/v1/openapi.json").json()
    paths = set(doc["paths"])
    assert {
        "/v1/{kind}",
        "/api/v1/profiles/resolve",
        "/api/v1/profiles/{profile_id}",
        "/api/v1/profiles/{profile_id}/events",
        "/api/v1/profiles/{profile_id}/merges",
        "/api/v1/profiles/{profile_id}/unmerge",
        "/api/v1/stats",
        "/api/v1/health",
        "/api/v1/sources",
        "/api/v1/identity/conflicts",
    } <= paths


def test_errors_have_one_shape_and_the_timeline_pages(client: TestClient) -> None:
    key = client.post("/api/v1/sources", json={"name": "web", "channel": "web"}, headers=AUTH).json()["write_key"]
    again = client.post("/api/v1/sources", json={"name": "web", "channel": "web"}, headers=AUTH)
    assert again.status_code == 409 and again.json()["error"]["code"] == "source_exists"
    batch = {
        "batch": [
            {
                "type": "track",
                "event": f"E{i}",
                "userId": "pat",
                "messageId": f"m{i}",
                "timestamp": f"2026-01-01T10:{i:02d}:00Z",
            }
            for i in range(7)
        ]
    }
    assert client.post("/v1/batch", json=batch, auth=(key, "")).status_code == 200
    assert client.post("/v1/nope", json={}, auth=(key, "")).json()["error"]["code"] == "unknown_endpoint"
    platform = client.app_state.platform  # type: ignore[attr-defined]
    assert platform.processor.drain()
    bad = client.get("/api/v1/profiles/resolve", params={"identifier": "nonsense"}, headers=AUTH)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_identifier"
    missing = client.get("/api/v1/profiles/resolve", params={"identifier": "user_id:nobody"}, headers=AUTH)
    assert missing.status_code == 404 and "nobody" in missing.json()["error"]["message"]
    pid = client.get("/api/v1/profiles/resolve", params={"identifier": "user_id:pat"}, headers=AUTH).json()[
        "profile_id"
    ]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 3, "order": "desc", **({"cursor": cursor} if cursor else {})}
        page = client.get(f"/api/v1/profiles/{pid}/events", params=params, headers=AUTH).json()
        seen += [e["event"] for e in page["events"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [f"E{i}" for i in reversed(range(7))]
    limit = client.get(f"/api/v1/profiles/{pid}/events", params={"limit": 0}, headers=AUTH)
    assert limit.status_code == 400 and limit.json()["error"]["code"] == "invalid_limit"
