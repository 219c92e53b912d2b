"""Stories 1-3 of SCENARIOS.md, end to end over real HTTP against a live server on real files."""

from __future__ import annotations

import random
from typing import Any

import httpx

from tests.conftest import LiveServer


def send(server: LiveServer, key: str, messages: list[dict[str, Any]], endpoint: str = "batch") -> None:
    response = httpx.post(f"{server.url}/v1/{endpoint}", json={"batch": messages}, auth=(key, ""), timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["rejected"] == []


def resolve(server: LiveServer, identifier: str) -> str:
    with server.admin() as client:
        response = client.get("/api/v1/profiles/resolve", params={"identifier": identifier})
    assert response.status_code == 200, f"{identifier}: {response.text}"
    return str(response.json()["profile_id"])


def timeline(server: LiveServer, pid: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    cursor = None
    with server.admin() as client:
        while True:
            params: dict[str, Any] = {"limit": 3}
            if cursor:
                params["cursor"] = cursor
            page = client.get(f"/api/v1/profiles/{pid}/events", params=params).json()
            events.extend(page["events"])
            cursor = page["next_cursor"]
            if not cursor:
                return server.collected(events)  # what the channels sent, not e.g. loyalty's points events


def at(minute: int) -> str:
    return f"2026-03-0{1 + minute // 1440}T{(minute // 60) % 24:02d}:{minute % 60:02d}:00.000Z"


def test_story_1_one_person_every_channel(live_server: LiveServer) -> None:
    web = live_server.add_source("web-shop", "web")
    app = live_server.add_source("mobile-app", "app")
    pos = live_server.add_source("pos", "store")
    desk = live_server.add_source("call-centre", "call_center")
    esp = live_server.add_source("email-provider", "email")
    chat = live_server.add_source("whatsapp", "messenger")
    card = [{"id": "LC-ANN-1", "type": "loyalty_card", "collection": "users", "encoding": "none"}]
    device = {"id": "dev-ann", "type": "ios", "token": "push-ann"}
    touches: list[tuple[str, dict[str, Any]]] = [
        (web, {"type": "page", "anonymousId": "w-ann", "name": "Spring collection", "timestamp": at(0)}),
        (
            web,
            {
                "type": "track",
                "event": "Product Viewed",
                "anonymousId": "w-ann",
                "timestamp": at(1),
                "properties": {"sku": "JKT-1"},
            },
        ),
        (
            web,
            {
                "type": "identify",
                "userId": "ann",
                "anonymousId": "w-ann",
                "timestamp": at(2),
                "traits": {"email": "ann@example.com", "phone": "+48 601 234 567", "first_name": "Ann"},
            },
        ),
        (
            app,
            {
                "type": "screen",
                "anonymousId": "app-ann",
                "name": "Home",
                "timestamp": at(60),
                "context": {"device": device, "library": {"name": "analytics-ios"}},
            },
        ),
        (
            app,
            {
                "type": "identify",
                "userId": "ann",
                "anonymousId": "app-ann",
                "timestamp": at(61),
                "context": {"device": device, "externalIds": card},
            },
        ),
        (
            pos,
            {
                "type": "track",
                "event": "Order Completed",
                "timestamp": at(1440),
                "anonymousId": "till-7-rcpt-1",
                "properties": {"order_id": "R-1", "revenue": 249.0, "currency": "PLN", "store_id": "st-waw-01"},
                "context": {"externalIds": card},
            },
        ),
        (
            desk,
            {
                "type": "track",
                "event": "Call Started",
                "anonymousId": "call-99",
                "timestamp": at(1500),
                "context": {"traits": {"phone": "601234567"}},
            },
        ),
        (esp, {"type": "track", "event": "Email Opened", "userId": "ann", "timestamp": at(1600)}),
        (
            chat,
            {
                "type": "track",
                "event": "Message Received",
                "anonymousId": "wa-1",
                "timestamp": at(1700),
                "context": {"traits": {"phone": "+48601234567"}},
            },
        ),
        (
            app,
            {
                "type": "track",
                "event": "Push Notification Tapped",
                "anonymousId": "app-ann",
                "timestamp": at(1800),
                "context": {"channel": "push", "device": device},
            },
        ),
    ]
    shuffled = touches[:]
    random.Random(7).shuffle(shuffled)  # arrival order is not event order
    for key, message in shuffled:
        send(live_server, key, [message])
    live_server.wait_processed()

    ann = resolve(live_server, "user_id:ann")
    for identifier in (
        "email:ANN@example.com",
        "phone:+48601234567",
        "loyalty_card:LC-ANN-1",
        "device_id:dev-ann",
        "anonymous_id:w-ann",
        "anonymous_id:app-ann",
        "push_token:push-ann",
    ):
        assert resolve(live_server, identifier) == ann, identifier
    events = timeline(live_server, ann)
    assert [e["timestamp"] for e in events] == sorted(e["timestamp"] for e in events)
    assert [e["channel"] for e in events] == [
        "web",
        "web",
        "web",
        "app",
        "app",
        "store",
        "call_center",
        "email",
        "messenger",
        "push",
    ]
    with live_server.admin() as client:
        profile = client.get(f"/api/v1/profiles/{ann}").json()
    assert profile["traits"]["first_name"]["value"] == "Ann"
    assert {c["channel"] for c in profile["channels"]} == {
        "web",
        "app",
        "store",
        "call_center",
        "email",
        "messenger",
        "push",
    }
    types = {i["type"] for i in profile["identifiers"]}
    assert {"user_id", "email", "phone", "loyalty_card", "device_id", "push_token", "anonymous_id"} <= types


def test_story_2_card_at_the_till_then_the_app_login_by_phone(live_server: LiveServer) -> None:
    pos = live_server.add_source("pos", "store")
    crm = live_server.add_source("crm", "other")
    app = live_server.add_source("app", "app")
    card = [{"id": "LC-BEA-7", "type": "loyalty_card"}]
    send(
        live_server,
        pos,
        [
            {
                "type": "track",
                "event": "Order Completed",
                "timestamp": at(0),
                "anonymousId": "r-1",
                "context": {"externalIds": card},
                "properties": {"order_id": "R-9", "revenue": 30, "currency": "DKK"},
            }
        ],
    )
    # the card's registration form (CRM export) holds her phone, in local format
    send(
        live_server,
        crm,
        [
            {
                "type": "identify",
                "timestamp": at(5),
                "context": {"externalIds": card},
                "traits": {"phone": "20 12 34 56", "country": "DK"},
            }
        ],
        endpoint="import",
    )
    live_server.wait_processed()
    till_profile = resolve(live_server, "loyalty_card:LC-BEA-7")
    send(
        live_server,
        app,
        [
            {
                "type": "identify",
                "userId": "bea",
                "anonymousId": "app-bea",
                "timestamp": at(600),
                "traits": {"phone": "+45 20123456"},
            }
        ],
    )
    live_server.wait_processed()
    bea = resolve(live_server, "user_id:bea")
    assert resolve(live_server, "loyalty_card:LC-BEA-7") == bea
    assert till_profile in (bea, *[m["from_profile"] for m in _merges(live_server, bea)])
    assert [e["event"] for e in timeline(live_server, bea) if e["type"] == "track"] == ["Order Completed"]


def _merges(server: LiveServer, pid: str) -> list[dict[str, Any]]:
    with server.admin() as client:
        return list(client.get(f"/api/v1/profiles/{pid}/merges").json()["merges"])


def test_story_3_family_computer_stays_two_people_and_a_wrong_merge_is_undone(live_server: LiveServer) -> None:
    web = live_server.add_source("web", "web")
    send(
        live_server,
        web,
        [
            {"type": "page", "anonymousId": "family-pc", "timestamp": at(0)},
            {
                "type": "identify",
                "userId": "mum",
                "anonymousId": "family-pc",
                "timestamp": at(1),
                "traits": {"email": "mum@example.com"},
            },
            {
                "type": "track",
                "event": "Product Viewed",
                "userId": "mum",
                "anonymousId": "family-pc",
                "timestamp": at(2),
            },
            {
                "type": "identify",
                "userId": "son",
                "anonymousId": "family-pc",
                "timestamp": at(300),
                "traits": {"email": "son@example.com"},
            },
            {
                "type": "track",
                "event": "Game Viewed",
                "userId": "son",
                "anonymousId": "family-pc",
                "timestamp": at(301),
            },
        ],
    )
    live_server.wait_processed()
    mum, son = resolve(live_server, "user_id:mum"), resolve(live_server, "user_id:son")
    assert mum != son
    assert resolve(live_server, "email:son@example.com") == son
    with live_server.admin() as client:
        conflicts = client.get("/api/v1/identity/conflicts").json()
    assert any(c["kind"] == "user_id_conflict" and "family-pc" in c["detail"] for c in conflicts)
    assert [e["event"] for e in timeline(live_server, son) if e["type"] == "track"] == ["Game Viewed"]

    # A guest on another computer types the family mailbox at checkout: a wrong merge into mum's profile.
    send(
        live_server,
        web,
        [
            {"type": "page", "anonymousId": "guest-laptop", "timestamp": at(400)},
            {"type": "track", "event": "Product Viewed", "anonymousId": "guest-laptop", "timestamp": at(401)},
            {
                "type": "identify",
                "anonymousId": "guest-laptop",
                "timestamp": at(402),
                "traits": {"email": "mum@example.com"},
            },
        ],
    )
    live_server.wait_processed()
    assert resolve(live_server, "anonymous_id:guest-laptop") == mum
    before = len(timeline(live_server, mum))
    with live_server.admin() as client:
        response = client.post(
            f"/api/v1/profiles/{mum}/unmerge",
            json={"identifier": "anonymous_id:guest-laptop", "reason": "guest used mum's email"},
        )
        assert response.status_code == 200, response.text
        guest = response.json()["new_profile_id"]
        bad = client.post(f"/api/v1/profiles/{mum}/unmerge", json={"identifier": "anonymous_id:nobody"})
        assert bad.status_code == 409 and bad.json()["error"]["code"] == "unmerge_refused"
    assert resolve(live_server, "anonymous_id:guest-laptop") == guest
    guest_events = timeline(live_server, guest)
    assert [e["type"] for e in guest_events] == ["page", "track"]  # its events went with it
    assert len(timeline(live_server, mum)) == before - 2
    assert any(m["kind"] == "unmerge" for m in _merges(live_server, mum))
