"""The whole server over real HTTP: consent, templates, providers, send, the sender thread delivering to a real SMTP
server, RFC 8058 one-click unsubscribe, click tracking, feedback keys, in-app inbox, error shapes, CLI."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import LiveServer, free_port
from tests.messaging.helpers import SmtpSink

TEMPLATE = {
    "name": "welcome",
    "purpose": "newsletter",
    "locales": {
        "en": {
            "email": {"subject": "Welcome {{ first_name }}", "html": '<a href="https://shop.example/new">New</a>'},
            "in_app": {"title": "Hello {{ first_name }}", "body": "Your inbox works"},
        },
        "da": {"email": {"subject": "Velkommen {{ first_name }}", "html": '<a href="https://shop.example/ny">Ny</a>'}},
    },
}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    port = free_port()
    live = LiveServer(
        tmp_path / "home",
        {"ACCORD_MESSAGING_POLICY": '{"quiet_hours": null}', "ACCORD_PUBLIC_URL": f"http://127.0.0.1:{port}"},
    )
    live.port, live.url = port, f"http://127.0.0.1:{port}"
    live.env["ACCORD_PORT"] = str(port)
    yield live.start(timeout=180)  # a busy machine can take long to start a server
    live.stop()


def wait_for(check: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_server_round_trip(server: LiveServer, tmp_path: Path) -> None:
    key = server.add_source("crm", "other")
    with httpx.Client(base_url=server.url, auth=(key, "")) as collect:
        batch = [
            {
                "type": "identify",
                "userId": "ida",
                "traits": {"email": "ida@example.com", "first_name": "Ida", "locale": "da-DK"},
                "context": {"device": {"id": "ipad-1"}},
            },
        ]
        assert collect.post("/v1/batch", json={"batch": batch}).status_code == 200
    server.wait_processed()
    with SmtpSink(free_port()) as smtp, server.admin() as api:
        assert api.post("/api/v1/templates", json=TEMPLATE).status_code == 200
        bad = api.post("/api/v1/templates", json={"name": "x", "locales": {"en": {"sms": {"text": "{{ oops"}}}})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "template_syntax"
        provider = api.post(
            "/api/v1/providers",
            json={
                "name": "mail",
                "channel": "email",
                "kind": "smtp",
                "config": {"port": smtp.controller.port, "from": "shop@example.com"},
            },
        )
        assert provider.status_code == 201
        feedback_url = provider.json()["feedback_url"]
        assert (
            api.post("/api/v1/providers", json={"name": "inbox", "channel": "in_app", "kind": "in_app"}).status_code
            == 201
        )
        consent = api.post(
            "/api/v1/consents",
            json={
                "identifier": "email:ida@example.com",
                "purpose": "newsletter",
                "channel": "email",
                "status": "opted_in",
                "source": "signup",
            },
        )
        assert consent.status_code == 200
        api.post(
            "/api/v1/consents",
            json={
                "identifier": "user_id:ida",
                "purpose": "newsletter",
                "channel": "in_app",
                "status": "opted_in",
                "source": "app",
            },
        )
        preview = api.get("/api/v1/templates/welcome/preview", params={"identifier": "email:ida@example.com"}).json()
        assert preview["locale"] == "da" and preview["channels"]["email"]["subject"] == "Velkommen Ida"

        sent = api.post(
            "/api/v1/messages",
            json={"identifier": "email:ida@example.com", "template": "welcome", "channels": ["email"]},
            headers={"Idempotency-Key": "welcome-ida"},
        )
        assert sent.status_code == 202 and sent.json()["status"] == "queued"
        again = api.post(
            "/api/v1/messages",
            json={"identifier": "email:ida@example.com", "template": "welcome", "channels": ["email"]},
            headers={"Idempotency-Key": "welcome-ida"},
        )
        assert again.json()["id"] == sent.json()["id"]
        wait_for(lambda: len(smtp.messages) == 1)  # the server's own sender thread delivered it
        mail = smtp.messages[0]
        assert mail["Subject"] == "Velkommen Ida" and mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

        # feedback: the key in the URL is the authority
        fb_path = feedback_url.removeprefix(server.url)
        assert httpx.post(server.url + fb_path.split("?")[0] + "?key=forged", json={}).status_code == 401
        delivered = httpx.post(server.url + fb_path, json={"id": sent.json()["id"], "status": "delivered"})
        assert delivered.status_code == 200 and delivered.json()["status"] == "delivered"

        # RFC 8058 one-click: a POST with List-Unsubscribe=One-Click opts the address out
        url = mail["List-Unsubscribe"].strip("<>")
        assert httpx.get(url).status_code == 200  # a GET (link scanner) changes nothing
        shown = api.get("/api/v1/consents", params={"identifier": "user_id:ida"}).json()
        assert {(c["channel"], c["status"]) for c in shown["consents"]} == {
            ("email", "opted_in"),
            ("in_app", "opted_in"),
        }
        one_click = httpx.post(
            url, content=b"List-Unsubscribe=One-Click", headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        assert one_click.status_code == 200
        shown = api.get("/api/v1/consents", params={"identifier": "user_id:ida"}).json()
        assert ("email", "opted_out") in {(c["channel"], c["status"]) for c in shown["consents"]}
        assert shown["reachable"] == ["email", "in_app"]
        prefs = httpx.get(url.replace("/unsubscribe/", "/preferences/"))
        assert prefs.status_code == 200 and "newsletter" in prefs.text

        # the in-app inbox
        note = api.post(
            "/api/v1/messages", json={"identifier": "user_id:ida", "template": "welcome", "channels": ["in_app"]}
        ).json()
        pid = note["profile_id"]
        wait_for(lambda: len(api.get(f"/api/v1/inbox/{pid}").json()) == 1)
        inbox = api.get(f"/api/v1/inbox/{pid}").json()
        assert inbox[0]["title"] == "Hello Ida" and inbox[0]["read"] is False
        assert api.post(f"/api/v1/inbox/{pid}/{note['id']}/read").json() == {"id": note["id"], "read": True}

        # errors: precise codes, never a traceback
        missing = api.post("/api/v1/messages", json={"identifier": "email:ida@example.com", "template": "nope"})
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_template"
        nobody = api.post("/api/v1/messages", json={"identifier": "email:who@example.com", "template": "welcome"})
        assert nobody.status_code == 404 and nobody.json()["error"]["code"] == "unknown_profile"
        assert httpx.get(server.url + "/t/c/forged.token/0", follow_redirects=False).status_code == 404
        assert "/api/v1/broadcasts" in api.get("/api/v1/openapi.json").json()["paths"]

        # the CLI talks to the running server
        env = {**server.env}
        accord = str(Path(sys.executable).parent / "accord")
        out = subprocess.run(
            [accord, "consent", "show", "email:ida@example.com", "--format", "json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["reachable"] == ["email", "in_app"]
        listed = subprocess.run(
            [accord, "providers", "list", "--format", "json"], env=env, capture_output=True, text=True, timeout=60
        )
        assert [p["name"] for p in json.loads(listed.stdout)] == ["mail", "inbox"]
        exported = subprocess.run(
            [accord, "privacy", "export", "email:ida@example.com", "--out", str(tmp_path / "ida.json")],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert exported.returncode == 0, exported.stderr
        dump = json.loads((tmp_path / "ida.json").read_text())
        assert dump["profile"]["traits"]["first_name"]["value"] == "Ida"
        assert {m["channel"] for m in dump["messages"]} == {"email", "in_app"}
        assert {c["status"] for c in dump["consents"]} >= {"opted_out"}
        assert any(e["event"] == "Consent Changed" for e in dump["timeline"])
        html = next(p for p in mail.walk() if p.get_content_type() == "text/html").get_payload(decode=True).decode()
        assert "/t/o/" in html  # open pixel
        link = re.search(r'href="([^"]+)"', html)
        assert link and link.group(1).startswith(server.url + "/t/c/")
        click = httpx.get(link.group(1), follow_redirects=False)
        assert (click.status_code, click.headers["location"]) == (302, "https://shop.example/ny")
        assert api.get(f"/api/v1/deliveries/{sent.json()['id']}").json()["status"] == "clicked"


def test_server_skips_a_promotion_for_a_customer_who_bought_it_at_the_till(server: LiveServer) -> None:
    crm, pos = server.add_source("crm", "other"), server.add_source("pos", "store")
    people = [
        {"type": "identify", "userId": u, "traits": {"email": f"{u}@example.com", "first_name": u.title()}}
        for u in ("eva", "max")
    ]
    receipt = {
        "type": "track",
        "event": "Order Completed",
        "userId": "eva",
        "properties": {"order_id": "POS-9", "revenue": 399, "currency": "PLN", "products": [{"sku": "SKU-RUN-42"}]},
    }
    with httpx.Client(base_url=server.url, auth=(crm, "")) as collect:
        assert collect.post("/v1/batch", json={"batch": people}).status_code == 200
    with httpx.Client(base_url=server.url, auth=(pos, "")) as till:
        assert till.post("/v1/batch", json={"batch": [receipt]}).status_code == 200
    server.wait_processed()
    launch = {
        "name": "launch",
        "purpose": "promotions",
        "promotes": {"skus": ["SKU-RUN-42"], "within": "30d"},
        "locales": {"en": {"email": {"subject": "New runners, {{ first_name }}", "text": "Here they are"}}},
    }
    with SmtpSink(free_port()) as smtp, server.admin() as api:
        saved = api.post("/api/v1/templates", json=launch)
        assert saved.status_code == 200 and saved.json()["promotes"] == {"skus": ["SKU-RUN-42"], "within": "30d"}
        bad = api.post("/api/v1/templates", json={**launch, "name": "bad", "promotes": {"skus": []}})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_promotes"
        provider = {"name": "mail", "channel": "email", "kind": "smtp", "config": {"port": smtp.controller.port}}
        assert api.post("/api/v1/providers", json=provider).status_code == 201
        for u in ("eva", "max"):
            consent = {
                "identifier": f"email:{u}@example.com",
                "purpose": "promotions",
                "channel": "email",
                "status": "opted_in",
                "source": "signup",
            }
            assert api.post("/api/v1/consents", json=consent).status_code == 200
        eva = api.get("/api/v1/profiles/resolve", params={"identifier": "email:eva@example.com"}).json()["profile_id"]
        bought = api.get(f"/api/v1/profiles/{eva}/purchases").json()
        assert [(p["sku"], p["channel"], p["order_id"]) for p in bought] == [("SKU-RUN-42", "store", "POS-9")]
        rebuilt = api.post("/api/v1/purchases/rebuild").json()
        assert (rebuilt["purchase_lines"], rebuilt["people"]) == (1, 1)

        audience = {"identifiers": ["email:eva@example.com", "email:max@example.com"]}
        planned = api.post("/api/v1/broadcasts", json={"name": "launch", "template": "launch", **audience})
        assert planned.status_code == 202 and planned.json()["planned"] == {"suppressed": 1, "queued": 1}
        wrong = api.post(
            "/api/v1/broadcasts",
            json={"name": "x", "template": "launch", **audience, "promotes": {"skus": ["A"], "within": "soon"}},
        )
        assert wrong.status_code == 400 and wrong.json()["error"]["code"] == "invalid_promotes"
        wait_for(lambda: len(smtp.messages) >= 1)
        (decision,) = api.get(f"/api/v1/profiles/{eva}/deliveries").json()
        assert (decision["status"], decision["reason"]) == ("suppressed", "already_purchased: SKU-RUN-42 within 30d")
    assert [m["To"] for m in smtp.messages] == ["max@example.com"]
