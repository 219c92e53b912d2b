"""The history backfill over real HTTP and through `accord loyalty backfill` talking to a running server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from tests.conftest import LiveServer

ACCORD = str(Path(sys.executable).parent / "accord")
PROGRAM = {"points_per_unit": {"default": 1}, "channel_multipliers": {"app": 2}, "expiry_days": 365,
           "tiers": [{"name": "member", "threshold": 0}, {"name": "silver", "threshold": 300}]}  # fmt: skip


def _cli(server: LiveServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ACCORD_HOME": str(server.home), "ACCORD_ADMIN_TOKEN": server.token}
    env.pop("ACCORD_STATE_URL", None)
    return subprocess.run([ACCORD, "loyalty", *args], env=env, capture_output=True, text=True, timeout=120)


def test_backfill_over_http_and_from_the_cli_through_the_server(live_server: LiveServer) -> None:
    server = live_server
    key = server.add_source("pos", "store")
    now = datetime.now(UTC)
    bought = [now - timedelta(days=d) for d in (500, 200, 40)]  # the first one's points have expired
    batch = [
        {"type": "track", "userId": "ida", "event": "Order Completed", "messageId": f"m{i}",
         "timestamp": at.isoformat(), "properties": {"order_id": f"o{i}", "revenue": 100 + i, "currency": "PLN"}}
        for i, at in enumerate(bought)
    ]  # fmt: skip
    httpx.post(f"{server.url}/v1/batch", json={"batch": batch}, auth=(key, ""), timeout=30).raise_for_status()
    server.wait_processed()
    with server.admin() as client:
        pid = client.get("/api/v1/profiles/resolve", params={"identifier": "user_id:ida"}).json()["profile_id"]

        def backfill(**body: object) -> httpx.Response:
            return client.post("/api/v1/loyalty/backfill", json=body)

        refused = backfill()
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "no_program"
        client.put("/api/v1/loyalty/program", json=PROGRAM).raise_for_status()
        assert client.get(f"/api/v1/loyalty/{pid}").json()["balance"] == 0  # loaded before the program
        bad = backfill(since="2025-13-01")
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_date"
        assert "since" in bad.json()["error"]["message"]
        backwards = backfill(since="2026-03-01", until="2026-02-01")
        assert backwards.status_code == 400 and backwards.json()["error"]["code"] == "invalid_range"
        planned = backfill(dry_run=True).json()
        assert planned["order_events"] == 3 and len(planned["months"]) == 3
        doc = client.get("/api/v1/openapi.json").json()
        assert "post" in doc["paths"]["/api/v1/loyalty/backfill"]

    done = _cli(server, "backfill", "--format", "json")  # the server owns the stores: only its API can do it
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["earned"], report["points_earned"], report["expired_lots"]) == (3, 100 + 101 + 102, 1)
    assert report["points_expired"] == 100 and report["tiers"] == {"member": 0, "silver": 1}
    with server.admin() as client:
        account = client.get(f"/api/v1/loyalty/{pid}").json()
        ledger = client.get(f"/api/v1/loyalty/{pid}/ledger").json()
    assert account["balance"] == 203 and account["lifetime_points"] == 303 and account["tier"] == "silver"
    assert [e["kind"] for e in ledger] == ["earn", "expire", "earn", "earn"]  # newest first, by date
    earned_on = [datetime.fromisoformat(e["created_at"]) for e in ledger if e["kind"] == "earn"]
    assert earned_on == bought[::-1]  # each dated at its purchase
    assert datetime.fromisoformat(ledger[1]["created_at"]) == bought[0] + timedelta(days=365)  # at its expiry

    again = _cli(server, "backfill")
    assert again.returncode == 0, again.stderr
    assert "0 purchases earned" in again.stdout and "3 already done" in again.stdout
    wrong = _cli(server, "backfill", "--since", "2025-02-30")
    assert wrong.returncode == 1 and "invalid_date" in wrong.stderr
    assert "--until" in _cli(server, "backfill", "--help").stdout
