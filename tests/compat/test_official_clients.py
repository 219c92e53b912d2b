"""The official Segment and RudderStack Python libraries, pointed at a live Accord server, just work."""

from __future__ import annotations

import gzip
import json
import uuid

import httpx
import rudderstack.analytics as rudder_analytics
import segment.analytics as segment_analytics

from tests.conftest import LiveServer


def _resolve(server: LiveServer, identifier: str) -> str:
    with server.admin() as client:
        response = client.get("/api/v1/profiles/resolve", params={"identifier": identifier})
        assert response.status_code == 200, response.text
        return str(response.json()["profile_id"])


def _timeline(server: LiveServer, pid: str) -> list[dict]:
    """The events the clients sent to the profile (not those Accord's domains added, e.g. loyalty points)."""
    with server.admin() as client:
        events = list(client.get(f"/api/v1/profiles/{pid}/events", params={"limit": 1000}).json()["events"])
    return server.collected(events)


def test_segment_python_client_events_land_on_the_right_profiles(live_server: LiveServer) -> None:
    key = live_server.add_source("python-backend", "web")
    errors: list[Exception] = []
    client = segment_analytics.Client(
        key, host=live_server.url, on_error=lambda e, _b: errors.append(e), upload_interval=0.05, max_retries=1
    )
    client.page(anonymous_id="anon-ann", name="Home", properties={"url": "https://shop.example/?utm_medium=email"})
    client.identify("ann", {"email": "Ann@Example.com", "phone": "+48 601 234 567"}, anonymous_id="anon-ann")
    client.track("ann", "Order Completed", {"order_id": "o1", "revenue": 99.5, "currency": "PLN"})
    client.track("bob", "Product Viewed", {"sku": "sku-1"})
    client.alias("anon-bob", "bob")
    client.flush()
    client.shutdown()
    assert not errors
    live_server.wait_processed()
    ann = _resolve(live_server, "email:ann@example.com")
    assert _resolve(live_server, "anonymous_id:anon-ann") == ann
    assert _resolve(live_server, "phone:+48601234567") == ann
    events = _timeline(live_server, ann)
    assert [e["type"] for e in events] == ["page", "identify", "track"]
    assert events[0]["channel"] == "email"  # utm_medium=email on the landing page
    assert events[2]["revenue_minor"] == 9950 and events[2]["currency"] == "PLN"
    assert all(e["raw"]["context"]["library"]["name"] == "analytics-python" for e in events)
    bob = _resolve(live_server, "user_id:bob")
    assert _resolve(live_server, "anonymous_id:anon-bob") == bob != ann


def test_rudderstack_python_client_with_gzip(live_server: LiveServer) -> None:
    key = live_server.add_source("rudder-backend", "app")
    rudder_analytics.write_key = key
    rudder_analytics.dataPlaneUrl = live_server.url
    rudder_analytics.gzip = True
    rudder_analytics.track("carol", "Screen Shown", {"screen": "home"})
    rudder_analytics.identify("carol", {"email": "carol@example.com"})
    rudder_analytics.flush()
    live_server.wait_processed()
    carol = _resolve(live_server, "email:carol@example.com")
    events = _timeline(live_server, carol)
    assert {e["type"] for e in events} == {"track", "identify"}
    assert all(e["channel"] == "app" for e in events)


def test_a_retried_batch_adds_nothing(live_server: LiveServer) -> None:
    key = live_server.add_source("web", "web")
    batch = {
        "batch": [
            {"type": "track", "event": f"E{i}", "anonymousId": "retry-anon", "messageId": str(uuid.uuid4())}
            for i in range(50)
        ],
        "sentAt": "2026-11-01T10:00:00Z",
    }
    body = gzip.compress(json.dumps(batch).encode())
    headers = {"Content-Encoding": "gzip", "Content-Type": "text/plain"}
    for _ in range(3):  # the client did not see our 200 and retried, twice
        response = httpx.post(f"{live_server.url}/v1/batch", content=body, headers=headers, auth=(key, ""))
        assert response.status_code == 200, response.text
    stats = live_server.wait_processed()
    assert stats["events"] == 50
    assert stats["accepted_messages"] == 150  # acknowledged three times, stored once
