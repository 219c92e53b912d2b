"""HTTP API and CLI of segments, traits and audiences against a real server on real files."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from ..conftest import LiveServer

ACCORD = str(Path(sys.executable).parent / "accord")

LOYAL = {
    "name": "store-regulars",
    "description": "two store orders",
    "rule": {"event": "Order Completed", "channel": "store", "count": {"gte": 2}},
}


def send(server: LiveServer, key: str, messages: list[dict[str, Any]]) -> None:
    response = httpx.post(f"{server.url}/v1/batch", json={"batch": messages}, auth=(key, ""), timeout=30)
    assert response.status_code == 200, response.text


def order(user: str, mid: str, channel: str = "store") -> dict[str, Any]:
    properties = {"order_id": mid, "revenue": 25.5, "currency": "PLN"}
    return {"type": "track", "event": "Order Completed", "userId": user, "messageId": mid,
            "context": {"channel": channel}, "properties": properties}  # fmt: skip


def wait_for(check: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def test_segments_over_http_and_cli(live_server: LiveServer, tmp_path: Path) -> None:
    key = live_server.add_source("pos", "store")
    send(live_server, key, [
        {"type": "identify", "userId": "ann", "messageId": "i1",
         "traits": {"email": " Ann@Example.com ", "phone": "+48 601 234 567", "country": "PL"}},
        order("ann", "o1"), order("ann", "o2"), order("bob", "o3"),
    ])  # fmt: skip
    live_server.wait_processed()
    with live_server.admin() as api:
        bad = api.post("/api/v1/segments", json={"name": "x", "rule": {"trait": "country", "equals": "PL"}})
        assert bad.status_code == 422
        assert bad.json()["error"]["code"] == "invalid_rule"
        assert "rule.equals" in bad.json()["error"]["message"]
        preview = api.post("/api/v1/segments/preview", json=LOYAL).json()
        assert preview["count"] == 1 and api.get("/api/v1/segments").json() == []
        applied = api.post("/api/v1/segments", json=LOYAL).json()
        assert (applied["size"], applied["entered"]) == (1, 1)
        ann = api.get("/api/v1/profiles/resolve", params={"identifier": "user_id:ann"}).json()["profile_id"]
        assert api.get("/api/v1/segments/store-regulars/members").json()["members"][0]["profile_id"] == ann
        csv_text = api.get("/api/v1/segments/store-regulars/members", params={"format": "csv"}).text
        assert csv_text.splitlines()[0] == "profile_id,entered_at" and ann in csv_text
        profile = api.get(f"/api/v1/profiles/{ann}").json()
        assert profile["segments"] == ["store-regulars"]
        assert profile["computed_traits"]["orders"] == 2
        assert profile["computed_traits"]["lifetime_revenue"] == 5100
        assert profile["computed_traits"]["favourite_channel"] == "store"

        exported = api.get("/api/v1/segments/store-regulars/export", params={"format": "hashed-csv"}).text
        email = hashlib.sha256(b"ann@example.com").hexdigest()
        phone = hashlib.sha256(b"+48601234567").hexdigest()
        assert exported.splitlines() == ["email_sha256,phone_sha256", f"{email},{phone}"]

        # bob's second till purchase brings him in within a second of ingestion
        started = time.monotonic()
        send(live_server, key, [order("bob", "o4")])
        assert wait_for(lambda: len(api.get("/api/v1/segments/store-regulars/members").json()["members"]) == 2)
        assert time.monotonic() - started < 10
        sizes = [s["size"] for s in api.get("/api/v1/segments/store-regulars/sizes").json()["sizes"]]
        assert sizes == [1, 2]
        feed = api.get("/api/v1/segments/changes", params={"after": 0}).json()["changes"]
        assert [c["change"] for c in feed] == ["entered", "entered"]

        trait = {"name": "store_spend", "compute": "sum", "property": "revenue", "of": {"channel": "store"}}
        assert api.post("/api/v1/traits", json=trait).status_code == 200
        assert "store_spend" in [t["name"] for t in api.get("/api/v1/traits").json()]
        assert api.get(f"/api/v1/profiles/{ann}").json()["computed_traits"]["store_spend"] == 51
        assert api.get("/api/v1/segments/nope/members").status_code == 404

    # the CLI goes through the running server
    env = {**os.environ, "ACCORD_HOME": str(live_server.home), "ACCORD_ADMIN_TOKEN": live_server.token}
    spec = tmp_path / "big.yaml"
    spec.write_text("name: big-spenders\nrule:\n  computed: lifetime_revenue\n  gte: 5000\n")
    out = subprocess.run([ACCORD, "segment", "apply", str(spec), "--format", "json"], env=env, capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)[0]["size"] == 2
    listed = subprocess.run([ACCORD, "segment", "list", "--format", "json"], env=env, capture_output=True, text=True,
                            timeout=60)  # fmt: skip
    assert {s["name"]: s["size"] for s in json.loads(listed.stdout)} == {"big-spenders": 2, "store-regulars": 2}


def test_cli_without_server_reports_rule_errors_with_lines(tmp_path: Path) -> None:
    env = {**os.environ, "ACCORD_HOME": str(tmp_path / "home")}
    spec = tmp_path / "bad.yaml"
    spec.write_text("name: lapsed\nrule:\n  all:\n    - event: Order Completed\n      within: sixty days\n")
    out = subprocess.run([ACCORD, "segment", "preview", str(spec)], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert "line 5" in out.stderr and "rule.all[0].within" in out.stderr and "Traceback" not in out.stderr
    spec.write_text("name: lapsed\nrule:\n  event: Order Completed\n")
    out = subprocess.run([ACCORD, "segment", "apply", str(spec), "--format", "json"], env=env, capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)[0]["size"] == 0
    out = subprocess.run([ACCORD, "audience", "export", "nope"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "no segment named 'nope'" in out.stderr
