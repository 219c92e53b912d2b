"""End to end over real stores, a real SMTP server and real HTTP providers: story 7, retries, failover, fallback,
feedback and cost on delivery, RFC 8058 headers, locale and personalisation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from accord.messaging import tables as t
from accord.messaging.broadcasts import broadcast_report, create_broadcast
from accord.messaging.policy import PolicyConfig
from accord.messaging.sender import Sender
from accord.messaging.service import Messaging
from accord.platform import Platform
from tests.conftest import free_port
from tests.messaging.helpers import ScriptedProvider, SmtpSink, person

OFFER = {
    "name": "spring-offer",
    "purpose": "promotions",
    "tags": ["spring"],
    "default_locale": "en",
    "locales": {
        "en": {
            "email": {
                "subject": "Spring offer for {{ first_name | default('you') }}",
                "html": '<p>Hi {{ first_name }}</p><a href="https://shop.example/spring">Shop</a>',
                "text": "Hi {{ first_name }}, see https://shop.example/spring. Unsubscribe: {{ unsubscribe_url }}",
            },
            "sms": {"text": "Hi {{ first_name }}, spring offer: shop.example/s"},
            "push": {"title": "Spring offer", "body": "Hi {{ first_name }}", "deep_link": "shop://spring"},
        },
        "pl": {
            "email": {
                "subject": "Wiosenna oferta dla {{ first_name }}",
                "html": "<p>Cześć {{ first_name }}</p>",
                "text": "Cześć {{ first_name }}",
            },
            "sms": {"text": "Cześć {{ first_name }}, wiosenna oferta"},
        },
    },
}


@pytest.fixture
def messaging(platform: Platform) -> Messaging:
    m = platform.messaging
    m.policy = PolicyConfig(quiet_hours=None)
    m.save_template(OFFER)
    return m


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    with SmtpSink(free_port(), refuse={"gone@example.com"}) as sink:
        yield sink


def opt_in(platform: Platform, identifier: str, channel: str, purpose: str = "promotions") -> None:
    platform.consents.set(identifier, purpose, channel, "opted_in", "test", "consent")


def rows(platform: Platform, **where: Any) -> list[Any]:
    d = t.deliveries
    query = sa.select(d).order_by(d.c.id)
    for key, value in where.items():
        query = query.where(d.c[key] == value)
    with platform.state.connect() as conn:
        return list(conn.execute(query))


def test_story_7_the_channel_they_actually_have(platform: Platform, messaging: Messaging, smtp: SmtpSink) -> None:
    with ScriptedProvider() as sms, ScriptedProvider() as push:
        messaging.add_provider(
            "mail", "email", "smtp", {"port": smtp.controller.port, "from": "Shop <shop@example.com>"}
        )
        messaging.add_provider("sms-gw", "sms", "http", {"url": sms.url + "/send"}, cost_minor=7, currency="PLN")
        messaging.add_provider("fcm", "push", "fcm", {"url": push.url + "/v1/messages:send"}, cost_minor=1)
        app_user = person(platform, "app", first_name="Ann", push_token="tok-1", phone="+48601000001")
        sms_user = person(platform, "sms", first_name="Bob", phone="+48601000002", email="bob@example.com")
        mail_user = person(platform, "mail", first_name="Ola", email="ola@example.com", locale="pl-PL")
        nobody = person(platform, "nobody", first_name="Dan")
        for ident, channel in [
            ("user_id:app", "push"),
            ("phone:+48601000002", "sms"),
            ("email:bob@example.com", "email"),
            ("email:ola@example.com", "email"),
        ]:
            opt_in(platform, ident, channel)
        planned = create_broadcast(
            messaging,
            "spring",
            "spring-offer",
            {"profile_ids": [app_user, sms_user, mail_user, nobody]},
            channels=["push", "sms", "email"],
        )
        assert planned["planned"] == {"queued": 3, "dropped": 1}
        assert Sender(messaging, backoff=0.01).drain(timeout=30) == 3

        assert [r.status for r in rows(platform, profile_id=nobody)] == ["dropped"]
        assert rows(platform, profile_id=nobody)[0].reason == (
            "no channel: unreachable:push; unreachable:sms; unreachable:email"
        )
        assert [r["key"] for r in push.requests] == [rows(platform, profile_id=app_user)[0].id]
        assert "Hi Ann" in push.requests[0]["body"] and "shop://spring" in push.requests[0]["body"]
        assert [r["key"] for r in sms.requests] == [rows(platform, profile_id=sms_user)[0].id]
        assert len(smtp.messages) == 1  # Bob was reached by SMS first; only Ola by email
        mail = smtp.messages[0]
        assert mail["To"] == "ola@example.com" and mail["Subject"] == "Wiosenna oferta dla Ola"
        assert mail["Message-ID"] == f"<{rows(platform, profile_id=mail_user)[0].id}@example.com>"
        assert mail["List-Unsubscribe"].startswith("<http://127.0.0.1:8000/consent/unsubscribe/")
        assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        html = next(p for p in mail.walk() if p.get_content_type() == "text/html").get_payload(decode=True).decode()
        assert "Cześć Ola" in html and "/t/o/" in html  # open pixel

        # cost is counted only on delivery: the SMS was accepted, not yet delivered
        sms_row = rows(platform, profile_id=sms_user)[0]
        assert (sms_row.status, sms_row.cost_minor) == ("sent", None)
        messaging.feedback("sms-gw", {"id": sms_row.provider_message_id, "status": "delivered"})
        sms_row = rows(platform, profile_id=sms_user)[0]
        assert (sms_row.status, sms_row.cost_minor, sms_row.currency) == ("delivered", 7, "PLN")
        report = broadcast_report(messaging, planned["id"])
        assert report["variants"]["A"]["cost_minor"] == 7

    assert platform.processor.drain()
    events = platform.events.timeline(sms_user).events
    assert [(e["event"], e["channel"]) for e in events if (e["event"] or "").startswith("Message")] == [
        ("Message Queued", "sms"),
        ("Message Sent", "sms"),
        ("Message Delivered", "sms"),
    ]


def test_retries_with_backoff_then_provider_failover_then_channel_fallback(
    platform: Platform, messaging: Messaging, smtp: SmtpSink
) -> None:
    with (
        ScriptedProvider([500, "timeout", 503]) as flaky,
        ScriptedProvider([200]) as backup,
        ScriptedProvider([(404, {"error": {"status": "UNREGISTERED"}})]) as push,
    ):
        messaging.add_provider("mail", "email", "smtp", {"port": smtp.controller.port, "from": "shop@example.com"})
        messaging.add_provider(
            "flaky",
            "sms",
            "twilio",
            {"url": flaky.url, "account_sid": "AC1", "auth_token": "x", "from": "+4800", "timeout": 0.5},
            priority=1,
        )
        messaging.add_provider("backup", "sms", "http", {"url": backup.url}, priority=2)
        messaging.add_provider("fcm", "push", "fcm", {"url": push.url})
        texter = person(platform, "texter", first_name="Eve", phone="+48601000003")
        bounced = person(platform, "bounced", first_name="Fay", push_token="stale-token", email="fay@example.com")
        opt_in(platform, "phone:+48601000003", "sms")
        opt_in(platform, "user_id:bounced", "push")
        opt_in(platform, "email:fay@example.com", "email")
        first = messaging.send(texter, "spring-offer", channels=["sms"], idempotency_key="k-1")
        again = messaging.send(texter, "spring-offer", channels=["sms"], idempotency_key="k-1")  # a client retry
        assert first["id"] == again["id"]
        messaging.send(bounced, "spring-offer", channels=["push", "email"])
        Sender(messaging, backoff=0.01, attempts_per_provider=3).drain(timeout=30)

        texted = rows(platform, profile_id=texter)
        assert len(texted) == 1 and texted[0].status == "sent" and texted[0].provider == "backup"
        assert [r["key"] for r in flaky.requests] == [texted[0].id] * 3  # same idempotency key every attempt
        assert "/2010-04-01/Accounts/AC1/Messages.json" in flaky.requests[0]["path"]
        assert [r["key"] for r in backup.requests] == [texted[0].id]

        fallen = rows(platform, profile_id=bounced)[0]
        assert (fallen.status, fallen.channel) == ("sent", "email")
        assert "fell back from push to email" in fallen.reason
        assert [m["To"] for m in smtp.messages] == ["fay@example.com"]
    assert platform.processor.drain()
    names = [
        (e["event"], e["channel"])
        for e in platform.events.timeline(bounced).events
        if (e["event"] or "").startswith("M")
    ]
    assert names == [("Message Queued", "push"), ("Message Bounced", "push"), ("Message Sent", "email")]


def test_smtp_hard_bounce_with_nothing_left_fails_and_feedback_is_validated(
    platform: Platform, messaging: Messaging, smtp: SmtpSink
) -> None:
    from accord.messaging.service import MessagingError

    messaging.add_provider("mail", "email", "smtp", {"port": smtp.controller.port, "from": "shop@example.com"})
    gone = person(platform, "gone", email="gone@example.com")
    opt_in(platform, "email:gone@example.com", "email")
    messaging.send(gone, "spring-offer", channels=["email"])
    Sender(messaging, backoff=0.01).drain(timeout=20)
    assert [(r.status, r.channel) for r in rows(platform, profile_id=gone)] == [("bounced", "email")]
    assert smtp.messages == []
    with pytest.raises(MessagingError, match="known status"):
        messaging.feedback("mail", {"id": "x", "status": "teleported"})
    with pytest.raises(MessagingError, match="no message"):
        messaging.feedback("mail", {"id": "nope", "status": "delivered"})


def test_large_batches_emit_their_events_in_slices_the_journal_accepts(
    platform: Platform, messaging: Messaging
) -> None:
    from accord.messaging.recipients import Recipient, static_loader
    from accord.messaging.service import SendRequest

    people = [Recipient(f"R{i:025d}", {"device_id": [f"d{i}"], "user_id": [f"r{i}"]}, {}) for i in range(1300)]
    messaging.loader = static_loader(people)
    messaging.save_template(
        {"name": "note", "purpose": "service", "locales": {"en": {"in_app": {"title": "t", "body": "b"}}}}
    )
    messaging.add_provider("inbox", "in_app", "in_app", {}, cost_minor=1)
    with platform.state.begin() as conn:
        counts = messaging.plan_in(conn, [(r, f"k{r.profile_id}") for r in people], SendRequest("note", ["in_app"]))
    assert counts == {"queued": 1300}
    assert Sender(messaging, batch_size=1300).drain(timeout=60) == 1300  # 2,600 events: sent + delivered
    assert {r.status for r in rows(platform)} == {"delivered"} and sum(r.cost_minor for r in rows(platform)) == 1300


def test_a_push_not_delivered_in_time_falls_back_to_sms(platform: Platform, messaging: Messaging) -> None:
    import time

    with ScriptedProvider() as push, ScriptedProvider() as sms:
        messaging.add_provider("fcm", "push", "fcm", {"url": push.url, "fallback_after_seconds": 0.3})
        messaging.add_provider("sms-gw", "sms", "http", {"url": sms.url})
        pid = person(platform, "kim", first_name="Kim", push_token="tok-k", phone="+48601000009")
        opt_in(platform, "user_id:kim", "push")
        opt_in(platform, "user_id:kim", "sms")
        messaging.send(pid, "spring-offer", channels=["push", "sms"])
        sender = Sender(messaging, backoff=0.01)
        sender.drain(timeout=10)
        assert len(push.requests) == 1 and sms.requests == []
        time.sleep(0.4)  # no delivery report from the push provider
        sender.drain(timeout=10)
        row = rows(platform, profile_id=pid)[0]
        assert (row.channel, row.status) == ("sms", "sent") and "not delivered by fcm" in row.reason
        assert len(sms.requests) == 1
