"""The CLI reads profiles whether or not a server runs, and never shows a traceback for user errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
from tests.conftest import LiveServer

ACCORD = str(Path(sys.executable).parent / "accord")


def run(home: Path, *args: str, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ACCORD_HOME": str(home), "ACCORD_ADMIN_TOKEN": "test-admin-token", **(extra_env or {})}
    return subprocess.run([ACCORD, *args], env=env, capture_output=True, text=True, timeout=120)


def test_profile_commands_with_a_running_server_and_without(tmp_path: Path) -> None:
    home = tmp_path / "home"
    server = LiveServer(home).start()
    try:
        key = run(home, "sources", "add", "web", "--channel", "web").stdout.strip()
        assert key.startswith("wk_")
        batch = {
            "batch": [
                {
                    "type": "identify",
                    "userId": "ann",
                    "anonymousId": "a1",
                    "traits": {"email": "ann@example.com"},
                    "timestamp": "2026-04-01T10:00:00Z",
                },
                {
                    "type": "track",
                    "event": "Order Completed",
                    "userId": "ann",
                    "timestamp": "2026-04-02T10:00:00Z",
                    "properties": {"revenue": 20, "currency": "EUR"},
                },
            ]
        }
        assert httpx.post(f"{server.url}/v1/batch", json=batch, auth=(key, "")).status_code == 200
        server.wait_processed()
        shown = run(home, "profile", "show", "email:Ann@Example.com", "--format", "json")  # through the server
        assert shown.returncode == 0, shown.stderr
        profile = json.loads(shown.stdout)
        assert {i["type"] for i in profile["identifiers"]} == {"user_id", "email", "anonymous_id"}
        listed = json.loads(run(home, "sources", "list", "--format", "json").stdout)
        assert [s["name"] for s in listed] == ["web"]
    finally:
        server.stop()
    # no server now: the CLI opens the stores itself
    timeline = run(home, "profile", "timeline", "anonymous_id:a1", "--format", "json")
    assert timeline.returncode == 0, timeline.stderr
    events = json.loads(timeline.stdout)["events"]
    assert [e["type"] for e in events] == ["identify", "track"]
    text = run(home, "profile", "timeline", "user_id:ann")
    assert "Order Completed" in text.stdout and "web" in text.stdout
    stats = json.loads(run(home, "stats", "--format", "json").stdout)
    assert stats["events"] == 2 and stats["profiles"] == 1


def test_user_errors_are_clear_messages_not_tracebacks(tmp_path: Path) -> None:
    home = tmp_path / "home"
    missing = run(home, "profile", "show", "email:nobody@example.com")
    assert missing.returncode == 1 and "no profile has identifier" in missing.stderr
    assert "Traceback" not in missing.stderr
    bad = run(home, "profile", "show", "not-an-identifier")
    assert bad.returncode == 1 and "TYPE:VALUE" in bad.stderr
    channel = run(home, "sources", "add", "x", "--channel", "carrier-pigeon")
    assert channel.returncode == 1 and "unknown channel" in channel.stderr
    assert "Traceback" not in bad.stderr + channel.stderr
