"""Data-subject erasure over the real stores: the person leaves the state store, the event store and the journal,
stays on the suppression list (a re-import or new events with their email bring nothing back), and the request is
audited; an export before and after shows what is held."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from accord.collect.importers import import_customers
from accord.collect.imports import JournalSink
from accord.collect.segment import SourceInfo
from accord.collect.sources import ensure_source
from accord.collect.tables import ingest_rejects, journal
from accord.consent.requests import requests_for
from accord.consent.tables import consents
from accord.identity.erasure import key_hash
from accord.identity.queries import profile_for_identifier
from accord.messaging import tables as t
from accord.messaging.policy import PolicyConfig
from accord.messaging.privacy import erase_person, export_person
from accord.messaging.service import MessagingError
from accord.platform import Platform
from tests.conftest import LiveServer
from tests.messaging.helpers import person

HEADER = "customer_id,email,phone,first_name,last_name,loyalty_card,country,city,locale,birth_date,updated_at"
ANN = "C1,Ann.Nowak@Example.com,601 000 001,Ann,Nowak,2990000000011,PL,Kraków,pl,1990-04-01,{at}"
BOB = "C2,bob@example.com,601 000 002,Bob,Berg,2990000000028,PL,Gdańsk,pl,1985-02-03,2024-01-02T10:00:00Z"
ANN_KEYS = ["email:ann.nowak@example.com", "phone:+48601000001", "loyalty_card:2990000000011", "customer_id:C1"]
TEMPLATE = {
    "name": "hello",
    "purpose": "newsletter",
    "locales": {"en": {"in_app": {"title": "Hello {{ first_name }}", "body": "News"}}},
}


def write_crm(path: Path, ann_at: str = "2024-01-02T10:00:00Z") -> Path:
    path.write_text("\n".join([HEADER, ANN.format(at=ann_at), BOB]) + "\n", encoding="utf-8")
    return path


def crm_sink(platform: Platform) -> JournalSink:
    source = ensure_source(platform.state, "crm-import", "other")
    return JournalSink(platform.journal, SourceInfo(source.id, source.channel))


def events_with(platform: Platform, needle: str) -> int:
    return int(platform.events.query("SELECT count(*) FROM events WHERE raw::VARCHAR ILIKE ?", [f"%{needle}%"])[0][0])


def journal_bodies(platform: Platform) -> str:
    with platform.state.connect() as conn:
        return "\n".join(bytes(b).decode() for (b,) in conn.execute(sa.select(journal.c.body)))


def test_erase_then_reimport_and_new_events_bring_nothing_back(platform: Platform, tmp_path: Path) -> None:
    messaging = platform.messaging
    messaging.policy = PolicyConfig(quiet_hours=None)
    messaging.save_template(TEMPLATE)
    messaging.add_provider("inbox", "in_app", "in_app", {})
    report = import_customers(write_crm(tmp_path / "crm.csv"), crm_sink(platform))
    assert report.accepted == 2
    assert platform.processor.drain()
    ann = profile_for_identifier(platform.state, "email:ann.nowak@example.com")
    bob = profile_for_identifier(platform.state, "email:bob@example.com")
    assert ann and bob and ann != bob
    person(platform, "ann-web", email="ANN.NOWAK@example.com", push_token="tok-ann", first_name="Ann")  # app login
    assert profile_for_identifier(platform.state, "user_id:ann-web") == ann
    platform.consents.set("email:ann.nowak@example.com", "newsletter", "email", "opted_in", "web form", "consent")
    platform.consents.set("user_id:ann-web", "newsletter", "in_app", "opted_in", "app", "consent")
    platform.consents.set("email:bob@example.com", "newsletter", "email", "opted_in", "web form", "consent")
    sent = messaging.send(ann, "hello", channels=["in_app"])
    assert sent["status"] == "queued"
    messaging.suppress(ann, "support_case", note="open ticket")
    assert platform.processor.drain()

    before = export_person(platform.state, platform.events, platform.consents, messaging, "phone:+48 601 000 001")
    assert before["profile"]["traits"]["first_name"]["value"] == "Ann"
    assert {e["event"] for e in before["timeline"]} >= {"Consent Changed", "Message Queued"}
    assert len(before["consents"]) == 2 and len(before["messages"]) == 1 and before["hold_outs"]
    assert events_with(platform, "Nowak") > 0 and "Nowak" in journal_bodies(platform)

    result = erase_person(
        platform.state,
        platform.events,
        platform.consents,
        messaging,
        "email:Ann.Nowak@example.com",
        requested_by="dpo@shop.example",
        drain=platform.processor.drain,
    )
    assert result["status"] == "done" and result["profiles"] == 1
    assert result["consents"] == 2 and result["events"] >= 4
    assert result["messaging"] == {"deliveries_dropped": 1, "deliveries_anonymised": 1, "hold_outs": 1, "purchases": 0}

    # state store: no identifier, no profile, no consent; the delivery keeps its counts without its person
    for key in [*ANN_KEYS, "user_id:ann-web", "device_id:dev-ann-web", "push_token:tok-ann"]:
        assert profile_for_identifier(platform.state, key) is None, key
    with platform.state.connect() as conn:
        assert conn.execute(sa.select(consents.c.identifier_key)).scalars().all() == ["email:bob@example.com"]
        delivery = conn.execute(sa.select(t.deliveries)).one()
        assert (delivery.profile_id, delivery.content, delivery.status) == ("erased", None, "dropped")
        assert conn.execute(sa.select(t.suppressions)).all() == []
    # event store and journal: nothing of Ann left; Bob untouched
    assert events_with(platform, "Nowak") == 0 and events_with(platform, "ann-web") == 0
    assert events_with(platform, "Berg") == 1
    for derived in ("event_days", "event_anchors"):  # the daily tables beside the log forget her too
        left = platform.events.query(
            f"SELECT count(*) FROM {derived} WHERE profile_id = ? OR anchor ILIKE ?", [ann, "%nowak%"]
        )
        assert left[0][0] == 0, derived
    assert platform.events.query("SELECT count(*) FROM event_anchors WHERE profile_id = ?", [bob])[0][0] > 0
    assert "Nowak" not in journal_bodies(platform) and "ann-web" not in journal_bodies(platform)
    with pytest.raises(MessagingError) as gone:
        export_person(platform.state, platform.events, platform.consents, messaging, "email:ann.nowak@example.com")
    assert gone.value.status == 404
    assert (
        export_person(platform.state, platform.events, platform.consents, messaging, "email:bob@example.com")[
            "profile"
        ]["traits"]["city"]["value"]
        == "Gdańsk"
    )

    # the same file again, a changed export of it, and new events with her email, phone or web id
    import_customers(write_crm(tmp_path / "crm.csv"), crm_sink(platform))
    changed = import_customers(write_crm(tmp_path / "crm2.csv", "2025-03-04T10:00:00Z"), crm_sink(platform))
    assert changed.accepted == 1  # acknowledged by the intake (valid), dropped by the processor as erased
    person(platform, "ann-again", drain=False, email="ann.nowak@EXAMPLE.com", first_name="Ann")
    person(platform, "ann-web", drain=False, first_name="Ann")
    person(platform, "ann-phone", drain=False, phone="+48 601 000 001")
    assert platform.processor.drain()
    for key in [*ANN_KEYS, "user_id:ann-web", "user_id:ann-again", "user_id:ann-phone"]:
        assert profile_for_identifier(platform.state, key) is None, key
    assert events_with(platform, "Nowak") == 0 and events_with(platform, "ann-again") == 0
    assert "Nowak" not in journal_bodies(platform) and "ann-again" not in journal_bodies(platform)
    with platform.state.connect() as conn:
        dropped = conn.execute(sa.select(sa.func.count()).where(ingest_rejects.c.code == "erased_subject")).scalar_one()
    assert dropped == 4  # the changed row, and the three new messages: never a silent drop
    person(platform, "bob", email="bob@example.com", first_name="Bob")
    assert profile_for_identifier(platform.state, "user_id:bob") == bob  # others still flow

    audit = requests_for(platform.state)
    assert [(a["kind"], a["identifier_type"], a["status"], a["requested_by"]) for a in audit] == [
        ("export", "email", "done", "api"),  # Bob's
        ("erase", "email", "done", "dpo@shop.example"),
        ("export", "phone", "done", "api"),
    ]
    assert audit[1]["identifier_hash"] == key_hash("email:ann.nowak@example.com")
    assert [a["id"] for a in requests_for(platform.state, "email:ann.nowak@example.com")] == [audit[1]["id"]]
    assert "nowak" not in json.dumps(audit).lower()  # the audit keeps a hash, never the address


def test_erasing_an_unknown_identifier_still_keeps_it_out(platform: Platform) -> None:
    result = erase_person(
        platform.state, platform.events, platform.consents, platform.messaging, "email:later@example.com"
    )
    assert result["profiles"] == 0 and result["identity_rows"] == {"suppressed_identifiers": 1}
    person(platform, "later", email="later@example.com")
    assert profile_for_identifier(platform.state, "email:later@example.com") is None
    with pytest.raises(MessagingError) as bad:
        erase_person(platform.state, platform.events, platform.consents, platform.messaging, "no-type-here")
    assert bad.value.code == "invalid_identifier"


def _post(server: LiveServer, write_key: str, path: str, message: dict[str, Any]) -> None:
    response = httpx.post(f"{server.url}/v1/{path}", json=message, auth=(write_key, ""), timeout=30)
    assert response.status_code == 200, response.text


def test_erase_over_http_and_the_cli(live_server: LiveServer) -> None:
    key = live_server.add_source("web", "web")
    _post(live_server, key, "identify", {"userId": "zoe", "traits": {"email": "zoe@example.com", "name": "Zoe"}})
    _post(live_server, key, "track", {"userId": "zoe", "event": "Viewed"})
    _post(live_server, key, "identify", {"userId": "yan", "traits": {"email": "yan@example.com"}})
    live_server.wait_processed()
    accord = str(Path(sys.executable).parent / "accord")
    with live_server.admin() as api:
        assert api.get("/api/v1/privacy/export", params={"identifier": "user_id:zoe"}).status_code == 200
        bad = api.post("/api/v1/privacy/erase", json={"identifier": "nonsense"})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_identifier"
        out = subprocess.run(
            [accord, "privacy", "erase", "email:zoe@example.com", "--yes", "--format", "json"],
            env=live_server.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["events"] == 2
        _post(live_server, key, "track", {"userId": "zoe", "event": "Came back"})
        live_server.wait_processed()
        gone = api.get("/api/v1/privacy/export", params={"identifier": "user_id:zoe"})
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "unknown_profile"
        assert api.get("/api/v1/privacy/export", params={"identifier": "user_id:yan"}).status_code == 200
        erased = api.post("/api/v1/privacy/erase", json={"identifier": "user_id:yan", "requested_by": "yan"}).json()
        assert erased["profiles"] == 1 and erased["status"] == "done"
        audit = api.get("/api/v1/privacy/requests").json()
        assert [a["requested_by"] for a in audit if a["kind"] == "erase"] == ["yan", "cli"]
