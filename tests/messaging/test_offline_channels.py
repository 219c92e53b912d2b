"""Direct mail and call-centre channels: a real print-house batch file (exactly once, across a crash and a restart)
on real stores, and the call task list with agents' outcomes over a live server's HTTP API."""

from __future__ import annotations

import csv
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from accord.collect.emit import emit
from accord.messaging import tables as t
from accord.messaging.adapters.offline import address_lines
from accord.messaging.broadcasts import create_broadcast
from accord.messaging.policy import PolicyConfig
from accord.messaging.sender import Sender
from accord.messaging.service import Messaging
from accord.platform import Platform
from accord.profiles import service as profiles
from accord.storage import utcnow
from tests.conftest import LiveServer, free_port

LETTER = {
    "name": "catalogue",
    "purpose": "promotions",
    "default_locale": "en",
    "locales": {
        "en": {"direct_mail": {"subject": "Spring catalogue", "text": "Dear {{ first_name }}, here is our catalogue."}},
        "pl": {"direct_mail": {"text": "Droga {{ first_name }}, oto nasz katalog."}},
    },
}
CALL = {
    "name": "winback-call",
    "purpose": "promotions",
    "locales": {"en": {"call": {"subject": "Win-back", "script": "Hello {{ first_name }}, we miss you at the shop."}}},
}


def postal_person(platform: Platform, user: str, address: str | None, **traits: Any) -> str:
    """Identify USER with TRAITS and (when given) a postal_address identifier; its profile id."""
    context = {"externalIds": [{"type": "postal_address", "id": address, "collection": "users"}]} if address else {}
    message = {"type": "identify", "userId": user, "traits": traits, "context": context}
    with platform.state.begin() as conn:
        emit(conn, platform.journal, "test-crm", "other", [message])
    assert platform.processor.drain()
    return profiles.resolve(platform.state, platform.rules, f"user_id:{user}") or ""


def batch_rows(folder: Path) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for path in sorted(folder.glob("printer-*.csv")):
        with path.open(newline="", encoding="utf-8") as fh:
            out.extend(csv.DictReader(fh))
    return out


@pytest.fixture
def messaging(platform: Platform) -> Messaging:
    m = platform.messaging
    m.policy = PolicyConfig(quiet_hours=None)
    m.save_template(LETTER)
    return m


def test_address_lines() -> None:
    assert address_lines("Main St 1, 00-001 Warsaw, Poland") == ["Main St 1", "00-001 Warsaw", "Poland", ""]
    assert address_lines("c/o Ann\nFlat 2, Main St 1\n00-001 Warsaw\nPL\nEU") == [
        "c/o Ann",
        "Flat 2, Main St 1",
        "00-001 Warsaw",
        "PL, EU",
    ]


def test_direct_mail_batch_file_once_per_delivery(platform: Platform, messaging: Messaging, tmp_path: Path) -> None:
    folder = tmp_path / "print-house"
    messaging.add_provider("printer", "direct_mail", "print_file", {"dir": str(folder)}, cost_minor=120)
    ann = postal_person(platform, "ann", "Main St 1, 00-001 Warsaw, Poland", first_name="Ann", last_name="Nowak")
    ola = postal_person(platform, "ola", "ul. Długa 5\n80-001 Gdańsk", first_name="Ola", locale="pl-PL")
    nomail = postal_person(platform, "bob", None, first_name="Bob")
    opted_out = postal_person(platform, "eve", "Side St 9, Oslo", first_name="Eve")
    for identifier in ("postal_address:Main St 1, 00-001 Warsaw, Poland", "postal_address:ul. Długa 5\n80-001 Gdańsk"):
        platform.consents.set(identifier, "promotions", "direct_mail", "opted_in", "paper form")
    platform.consents.set("user_id:bob", "promotions", "direct_mail", "opted_in", "paper form")
    platform.consents.set("postal_address:Side St 9, Oslo", "promotions", "direct_mail", "opted_out", "letter")

    planned = create_broadcast(
        messaging, "spring", "catalogue", {"profile_ids": [ann, ola, nomail, opted_out]}, channels=["direct_mail"]
    )
    d = t.deliveries
    with platform.state.connect() as conn:
        decided = {r.profile_id: r for r in conn.execute(sa.select(d).where(d.c.broadcast_id == planned["id"]))}
    assert decided[nomail].status == "dropped" and "unreachable:direct_mail" in decided[nomail].reason
    assert decided[opted_out].status == "dropped" and "opted_out:promotions:direct_mail" in decided[opted_out].reason

    assert Sender(messaging).drain(timeout=30) == 2
    rows = {r["delivery_id"]: r for r in batch_rows(folder)}
    assert set(rows) == {decided[ann].id, decided[ola].id}
    letter = rows[decided[ann].id]
    assert (letter["name"], letter["address_1"], letter["address_2"], letter["address_3"]) == (
        "Ann Nowak",
        "Main St 1",
        "00-001 Warsaw",
        "Poland",
    )
    assert (letter["subject"], letter["text"]) == ("Spring catalogue", "Dear Ann, here is our catalogue.")
    assert rows[decided[ola].id]["text"] == "Droga Ola, oto nasz katalog."
    assert rows[decided[ola].id]["address_2"] == "80-001 Gdańsk"
    assert len(list(folder.glob("printer-*.csv"))) == 1  # one dated batch file

    # A crash after the file was written but before the outbox recorded it: the lease runs out and a new sender
    # process (its own adapter, nothing in memory) sends the same deliveries again. Nothing is printed twice.
    def crash_before_commit() -> None:
        with platform.state.begin() as conn:
            conn.execute(
                d.update()
                .where(d.c.id.in_([decided[ann].id, decided[ola].id]))
                .values(status="sending", claimed_by="dead", claimed_until=utcnow() - timedelta(seconds=1))
            )

    crash_before_commit()
    assert Sender(messaging).drain(timeout=30) == 2
    assert sorted(r["delivery_id"] for r in batch_rows(folder)) == sorted([decided[ann].id, decided[ola].id])
    with platform.state.connect() as conn:
        after = {r.profile_id: r for r in conn.execute(sa.select(d).where(d.c.broadcast_id == planned["id"]))}
    assert after[ann].status == "sent" and after[ann].provider == "printer"

    # The print house took the batch file away; a late resend still prints nothing (the ledger remembers).
    for path in folder.glob("printer-*.csv"):
        path.rename(tmp_path / path.name)
    crash_before_commit()
    assert Sender(messaging).drain(timeout=30) == 2
    assert batch_rows(folder) == []

    # Returned mail is reported like any provider feedback; delivery is costed and lands on the timeline.
    messaging.feedback("printer", {"id": decided[ann].id, "status": "delivered"})
    assert platform.processor.drain()
    events = platform.events.timeline(ann).events
    assert [(e["event"], e["channel"]) for e in events if (e["event"] or "").startswith("Message")] == [
        ("Message Queued", "direct_mail"),
        ("Message Sent", "direct_mail"),
        ("Message Delivered", "direct_mail"),
    ]
    assert messaging.delivery(decided[ann].id)["cost_minor"] == 120


def test_print_file_provider_is_checked(messaging: Messaging, tmp_path: Path) -> None:
    from accord.messaging.service import MessagingError

    with pytest.raises(MessagingError, match="dir"):
        messaging.add_provider("printer", "direct_mail", "print_file", {})
    with pytest.raises(MessagingError, match="serves the direct_mail channel"):
        messaging.add_provider("printer", "email", "print_file", {"dir": str(tmp_path)})
    (tmp_path / "file").write_text("x")
    with pytest.raises(MessagingError, match="not a directory"):
        messaging.add_provider("printer", "direct_mail", "print_file", {"dir": str(tmp_path / "file")})
    with pytest.raises(MessagingError, match="missing text"):
        messaging.save_template({"name": "bad", "locales": {"en": {"direct_mail": {"subject": "x"}}}})


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    port = free_port()
    live = LiveServer(
        tmp_path / "home",
        {"ACCORD_MESSAGING_POLICY": '{"quiet_hours": null}', "ACCORD_PUBLIC_URL": f"http://127.0.0.1:{port}"},
    )
    live.port, live.url = port, f"http://127.0.0.1:{port}"
    live.env["ACCORD_PORT"] = str(port)
    yield live.start(timeout=180)
    live.stop()


def wait_for(check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_call_tasks_and_letters_over_http(server: LiveServer, tmp_path: Path) -> None:
    key = server.add_source("crm", "other")
    people = [
        {"type": "identify", "userId": "kim", "traits": {"phone": "+48601200300", "first_name": "Kim"}},
        {"type": "identify", "userId": "lea", "traits": {"phone": "+48601200301", "first_name": "Lea"}},
        {
            "type": "identify",
            "userId": "max",
            "traits": {"first_name": "Max", "last_name": "Berg"},
            "context": {"externalIds": [{"type": "postal_address", "id": "Storgatan 1, 111 22 Stockholm"}]},
        },
    ]
    with httpx.Client(base_url=server.url, auth=(key, "")) as collect:
        assert collect.post("/v1/batch", json={"batch": people}).status_code == 200
    server.wait_processed()
    folder = tmp_path / "letters"
    with server.admin() as api:
        for template in (CALL, LETTER):
            assert api.post("/api/v1/templates", json=template).status_code == 200
        for provider in (
            {"name": "agents", "channel": "call", "kind": "call_list"},
            {"name": "printer", "channel": "direct_mail", "kind": "print_file", "config": {"dir": str(folder)}},
        ):
            assert api.post("/api/v1/providers", json=provider).status_code == 201
        wrong = api.post("/api/v1/providers", json={"name": "x", "channel": "sms", "kind": "call_list"})
        assert wrong.status_code == 400 and wrong.json()["error"]["code"] == "invalid_provider"
        for identifier, channel in (
            ("phone:+48601200300", "call"),
            ("phone:+48601200301", "call"),
            ("postal_address:Storgatan 1, 111 22 Stockholm", "direct_mail"),
        ):
            body = {"identifier": identifier, "purpose": "promotions", "channel": channel, "status": "opted_in"}
            assert api.post("/api/v1/consents", json={**body, "source": "call"}).status_code == 200

        calls = {}
        for user in ("kim", "lea"):
            sent = api.post(
                "/api/v1/messages",
                json={"identifier": f"user_id:{user}", "template": "winback-call", "channels": ["call"]},
            )
            assert sent.status_code == 202 and sent.json()["status"] == "queued", sent.text
            calls[user] = sent.json()["id"]
        letter = api.post(
            "/api/v1/messages",
            json={"identifier": "user_id:max", "template": "catalogue", "channels": ["direct_mail"]},
        )
        assert letter.status_code == 202 and letter.json()["status"] == "queued", letter.text

        # the server's sender puts both calls on the list and the letter in the print house's batch file
        tasks = wait_for(lambda: (lambda ts: ts if len(ts) == 2 else None)(api.get("/api/v1/call-center/tasks").json()))
        by_id = {task["id"]: task for task in tasks}
        assert set(by_id) == set(calls.values())
        kim_task = by_id[calls["kim"]]
        assert (kim_task["name"], kim_task["phone"], kim_task["status"]) == ("Kim", "+48601200300", "sent")
        assert kim_task["script"] == "Hello Kim, we miss you at the shop." and kim_task["subject"] == "Win-back"
        printed = wait_for(lambda: batch_rows(folder))
        assert [(r["delivery_id"], r["name"], r["address_3"]) for r in printed] == [
            (letter.json()["id"], "Max Berg", "")
        ] and printed[0]["address_2"] == "111 22 Stockholm"

        # agents record outcomes: reached -> delivered; refused -> unsubscribed and opted out of calls
        reached = api.post(f"/api/v1/call-center/tasks/{calls['kim']}", json={"outcome": "reached", "agent": "ag7"})
        assert reached.status_code == 200 and reached.json()["status"] == "delivered"
        again = api.post(f"/api/v1/call-center/tasks/{calls['kim']}", json={"outcome": "no_answer"})
        assert again.status_code == 409 and again.json()["error"]["code"] == "task_closed"
        bad = api.post(f"/api/v1/call-center/tasks/{calls['lea']}", json={"outcome": "maybe"})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_outcome"
        missing = api.post("/api/v1/call-center/tasks/nope", json={"outcome": "reached"})
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_task"
        refused = api.post(f"/api/v1/call-center/tasks/{calls['lea']}", json={"outcome": "refused", "note": "no"})
        assert refused.status_code == 200 and refused.json()["status"] == "unsubscribed"

        assert api.get("/api/v1/call-center/tasks").json() == []  # nothing left to call
        done = api.get("/api/v1/call-center/tasks", params={"status": "delivered"}).json()
        assert [task["id"] for task in done] == [calls["kim"]]
        assert len(api.get("/api/v1/call-center/tasks", params={"status": "all"}).json()) == 2
        wrong_status = api.get("/api/v1/call-center/tasks", params={"status": "nonsense"})
        assert wrong_status.status_code == 400 and wrong_status.json()["error"]["code"] == "invalid_status"
        consents = api.get("/api/v1/consents", params={"identifier": "phone:+48601200301"}).json()["consents"]
        assert {(c["channel"], c["status"]) for c in consents} == {("call", "opted_out")}

        server.wait_processed()
        kim = reached.json()["profile_id"]
        timeline = api.get(f"/api/v1/profiles/{kim}/events", params={"limit": 100}).json()["events"]
        messages = [e for e in timeline if (e["event"] or "").startswith("Message")]
        assert [(e["event"], e["channel"]) for e in messages] == [
            ("Message Queued", "call_center"),
            ("Message Sent", "call_center"),
            ("Message Delivered", "call_center"),
        ]


def test_calls_cli_on_local_stores(tmp_path: Path) -> None:
    import json
    import os
    import subprocess
    import sys

    from accord.platform import open_platform
    from tests.conftest import make_settings

    home = tmp_path / "home"
    platform = open_platform(make_settings(home))
    with platform.state.begin() as conn:
        message = {"type": "identify", "userId": "ivo", "traits": {"phone": "+48601200302", "first_name": "Ivo"}}
        emit(conn, platform.journal, "crm", "other", [message])
    assert platform.processor.drain()
    platform.consents.set("phone:+48601200302", "promotions", "call", "opted_in", "shop")
    platform.messaging.save_template(CALL)
    platform.messaging.add_provider("agents", "call", "call_list", {})
    pid = profiles.resolve(platform.state, platform.rules, "user_id:ivo") or ""
    platform.messaging.policy = PolicyConfig(quiet_hours=None)  # due now, whatever the hour of the test
    task = platform.messaging.send(pid, "winback-call", channels=["call"])["id"]
    platform.close()

    accord = str(Path(sys.executable).parent / "accord")
    env = {**os.environ, "ACCORD_HOME": str(home), "ACCORD_MESSAGING_POLICY": '{"quiet_hours": null}'}

    def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([accord, *args], env=env, capture_output=True, text=True, timeout=120)
        assert (done.returncode == 0) == ok, done.stdout + done.stderr
        return done

    run("outbox", "run", "--until-idle")
    listed = json.loads(run("calls", "list", "--format", "json").stdout)
    assert [(t["id"], t["name"], t["phone"]) for t in listed] == [(task, "Ivo", "+48601200302")]
    bad = run("calls", "record", task, "maybe", ok=False)
    assert "unknown call outcome 'maybe'" in bad.stdout + bad.stderr and "Traceback" not in bad.stderr
    assert "-> delivered" in run("calls", "record", task, "reached", "--agent", "ag1").stdout
    assert json.loads(run("calls", "list", "--format", "json").stdout) == []
    again = run("calls", "record", task, "refused", ok=False)
    assert "task_closed" in again.stdout + again.stderr or "not open" in again.stdout + again.stderr
