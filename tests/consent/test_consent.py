"""Consent on real state stores (SQLite and PostgreSQL): changes, double opt-in, STOP/START, unsubscribe, timeline."""

from __future__ import annotations

from datetime import timedelta

import pytest

from accord.consent import signing
from accord.consent.service import (
    OPTED_IN,
    OPTED_OUT,
    PENDING,
    ConsentError,
    Consents,
    reachable,
)
from accord.platform import Platform
from accord.profiles import service as profiles
from accord.storage import utcnow

SECRET = b"test-secret"


@pytest.fixture
def consents(platform: Platform) -> Consents:
    return Consents(platform.state, platform.journal, platform.rules, SECRET, "http://accord.test")


def _identify(platform: Platform, user: str, **traits: str) -> None:
    from accord.collect.emit import emit

    with platform.state.begin() as conn:
        emit(conn, platform.journal, "test-crm", "other", [{"type": "identify", "userId": user, "traits": traits}])
    assert platform.processor.drain()


def test_set_show_and_can_contact_follow_the_newest_record(platform: Platform, consents: Consents) -> None:
    _identify(platform, "ann", email="ann@example.com", phone="+48601234567")
    ids = {"email": ["ann@example.com"], "phone": ["+48601234567"], "user_id": ["ann"]}
    assert consents.can_contact(ids, "promotions", "email") == (False, "no_consent:promotions:email")
    assert consents.can_contact(ids, "order_updates", "email") == (True, "transactional")
    consents.set("email:Ann@Example.com", "promotions", "email", OPTED_IN, "signup-form", "consent")
    assert consents.can_contact(ids, "promotions", "email") == (True, "opted_in")
    assert consents.can_contact(ids, "promotions", "push") == (False, "unreachable:push")
    shown = consents.show("phone:+48 601 234 567")  # any identifier of the person shows all their consents
    assert shown["reachable"] == ["email", "sms", "call"]
    assert [(c["purpose"], c["channel"], c["status"]) for c in shown["consents"]] == [("promotions", "email", OPTED_IN)]
    # expiry: an expired consent is unknown again
    consents.set("email:ann@example.com", "newsletter", "email", OPTED_IN, "import", expires_at=utcnow() - timedelta(1))
    assert consents.can_contact(ids, "newsletter", "email")[0] is False
    with pytest.raises(ConsentError, match="unknown purpose"):
        consents.set("email:ann@example.com", "spam", "email", OPTED_IN, "x")
    with pytest.raises(ConsentError, match="unknown status"):
        consents.set("email:ann@example.com", "promotions", "email", "maybe", "x")
    with pytest.raises(ConsentError, match="TYPE:VALUE"):
        consents.set("ann", "promotions", "email", OPTED_IN, "x")


def test_every_change_is_an_event_on_the_timeline_with_its_channel(platform: Platform, consents: Consents) -> None:
    _identify(platform, "bob", email="bob@example.com")
    consents.set("email:bob@example.com", "promotions", "email", OPTED_IN, "signup-form", "consent")
    consents.set("email:bob@example.com", "promotions", "email", OPTED_OUT, "call-centre")
    assert platform.processor.drain()
    pid = profiles.resolve(platform.state, platform.rules, "user_id:bob") or ""
    events = [e for e in platform.events.timeline(pid).events if e["event"] == "Consent Changed"]
    assert [e["channel"] for e in events] == ["email", "email"]
    props = [e["raw"]["properties"] for e in events]
    assert [(p["status"], p["previous_status"], p["source"]) for p in props] == [
        (OPTED_IN, "unknown", "signup-form"),
        (OPTED_OUT, OPTED_IN, "call-centre"),
    ]


def test_double_opt_in_by_signed_link_and_by_sms_keyword(platform: Platform, consents: Consents) -> None:
    request = consents.request_double_opt_in("email:cy@example.com", "newsletter", "email", "footer-form")
    ids = {"email": ["cy@example.com"]}
    assert consents.can_contact(ids, "newsletter", "email") == (False, "pending_double_opt_in:newsletter:email")
    assert request["confirm_url"].startswith("http://accord.test/consent/confirm/")
    with pytest.raises(ConsentError, match="signature"):
        consents.confirm(request["token"][:-3] + "AAA")
    assert consents.confirm(request["token"]).status == OPTED_IN
    assert consents.can_contact(ids, "newsletter", "email") == (True, "opted_in")

    consents.request_double_opt_in("phone:+48 602 000 111", "promotions", "sms", "till")
    result = consents.inbound_sms("+48602000111", " yes ")
    assert result["action"] == "confirm" and [c["status"] for c in result["changed"]] == [OPTED_IN]
    phone = {"phone": ["+48602000111"]}
    assert consents.can_contact(phone, "promotions", "sms")[0] is True
    assert consents.inbound_sms("+48602000111", "STOP")["action"] == "stop"
    assert consents.can_contact(phone, "promotions", "sms") == (False, "opted_out:promotions:sms")
    assert consents.can_contact(phone, "order_updates", "sms")[0] is True  # STOP is about marketing
    assert consents.inbound_sms("+48602000111", "Start")["action"] == "start"
    assert consents.can_contact(phone, "promotions", "sms")[0] is True
    assert consents.inbound_sms("+48602000111", "what time do you open?")["action"] == "none"


def test_one_click_unsubscribe_and_preference_centre(platform: Platform, consents: Consents) -> None:
    consents.set("email:dee@example.com", "promotions", "email", OPTED_IN, "signup")
    consents.set("email:dee@example.com", "newsletter", "email", OPTED_IN, "signup")
    links = consents.unsubscribe_links("email:dee@example.com", "promotions", "email")
    token = links["one_click"].rsplit("/", 1)[1]
    assert consents.unsubscribe(token).status == OPTED_OUT
    prefs = consents.preferences(token)
    assert {p["purpose"]: p["status"] for p in prefs["purposes"]} == {
        "newsletter": OPTED_IN,
        "promotions": OPTED_OUT,
        "loyalty": "unknown",
    }
    updated = consents.update_preferences(token, {"newsletter": False, "loyalty": True})
    assert {p["purpose"]: p["status"] for p in updated["purposes"]}["loyalty"] == OPTED_IN
    with pytest.raises(ConsentError):
        consents.unsubscribe(signing.sign_value(b"other-secret", "unsub", "promotions|email|email:dee@example.com"))
    with pytest.raises(ConsentError):  # a confirmation token is not an unsubscribe token
        consents.unsubscribe(signing.sign_value(SECRET, "track", "promotions|email|email:dee@example.com"))


def test_reachability_from_identifiers() -> None:
    assert reachable({"push_token": ["t"], "device_id": ["d"]}) == ["push", "in_app"]
    assert reachable({"email": ["a@b.c"]}, ["push", "sms", "email"]) == ["email"]
    assert reachable({}) == []
    assert PENDING == "pending"
