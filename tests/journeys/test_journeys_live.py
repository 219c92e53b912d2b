"""Journeys through the real server: apply over HTTP, a tracked event starts the journey, the runner delivers a
webhook to a real HTTP receiver exactly once, the CLI reads stats and simulates."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer

JOURNEY = """
name: store-visit
trigger:
  event: Store Entered
  where: {store_id: {in: [WAW-1, WAW-2]}}
steps:
  - id: tell-store
    webhook:
      url: {receiver}/arrivals
      body: {message: customer on the way}
  - id: associate
    task: {queue: store, title: Greet the customer}
  - id: tag
    update_profile: {traits: {visited_store: true}}
"""


class Receiver:
    """A real HTTP server that fails the first call (500) and records the rest."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.failures_left = 1
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if outer.failures_left:
                    outer.failures_left -= 1
                    self.send_response(500)
                    self.end_headers()
                    return
                outer.calls.append((self.headers["Idempotency-Key"], body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


def wait_for(check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def cli(server: LiveServer, *args: str) -> subprocess.CompletedProcess[str]:
    accord = Path(sys.executable).parent / "accord"
    env = {**os.environ, **{k: v for k, v in server.env.items() if k.startswith("ACCORD_")}}
    return subprocess.run([str(accord), *args], env=env, capture_output=True, text=True, timeout=120)


def test_a_store_visit_journey_runs_in_the_server(live_server: LiveServer, receiver: Receiver, tmp_path: Path) -> None:
    key = live_server.add_source("app", "app")
    with live_server.admin() as admin:
        bad = admin.post("/api/v1/journeys", content="name: x\ntrigger: {event: A}\nsteps: [{wait: soon}]")
        assert bad.status_code == 422 and "line 3" in bad.json()["error"]["message"]
        applied = admin.post(
            "/api/v1/journeys", params={"activate": "true"}, content=JOURNEY.replace("{receiver}", receiver.url)
        )
        assert applied.status_code in (200, 201), applied.text
        assert applied.json()["status"] == "active"
    track = {"userId": "ann", "event": "Store Entered", "properties": {"store_id": "WAW-1"}, "messageId": "e1"}
    other = {"userId": "bob", "event": "Store Entered", "properties": {"store_id": "GDA-1"}, "messageId": "e2"}
    for message in (track, other):
        assert httpx.post(f"{live_server.url}/v1/track", json=message, auth=(key, "")).status_code == 200

    wait_for(lambda: receiver.calls, timeout=40)  # the first attempt failed (500); the retry delivered it
    with live_server.admin() as admin:
        stats = wait_for(lambda: (s := admin.get("/api/v1/journeys/store-visit/stats").json())["completed"] and s)
        assert stats["entered"] == 1
        tasks = admin.get("/api/v1/tasks", params={"queue": "store"}).json()
        assert [t["title"] for t in tasks] == ["Greet the customer"]
        ann = admin.get("/api/v1/profiles/resolve", params={"identifier": "user_id:ann"}).json()["profile_id"]
        profile = wait_for(
            lambda: (p := admin.get(f"/api/v1/profiles/{ann}").json())["traits"].get("visited_store") and p
        )
        assert profile["traits"]["visited_store"]["value"] is True
    time.sleep(2.5)  # give the runner time to (wrongly) deliver again
    assert len(receiver.calls) == 1
    idempotency_key, body = receiver.calls[0]
    assert idempotency_key.endswith(":tell-store") and body["message"] == "customer on the way"

    result = cli(live_server, "journey", "stats", "store-visit", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["completed"] == 1
    definition = tmp_path / "j.yaml"
    definition.write_text(JOURNEY.replace("{receiver}", receiver.url))
    sim = cli(live_server, "journey", "simulate", str(definition), "--profile", "user_id:ann")
    assert sim.returncode == 0, sim.stderr
    assert "[tell-store] POST" in sim.stdout and "[associate] task for store" in sim.stdout
    paused = cli(live_server, "journey", "pause", "store-visit")
    assert paused.returncode == 0 and "paused" in paused.stdout
    missing = cli(live_server, "journey", "start", "nope")
    assert missing.returncode == 1 and "no journey named 'nope'" in missing.stderr
