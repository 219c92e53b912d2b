"""Web Push against a real local HTTP server playing the browser's push service: the payload is encrypted so only
the subscription's keys open it (RFC 8291), pushes carry a verifiable VAPID signature (RFC 8292), 5xx is retried,
a gone subscription (410) falls back to email, and a failing provider fails over to the next one."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import http_ece
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from accord.messaging import tables as t
from accord.messaging.adapters.webpush import b64url, encrypt, parse_subscription, unb64url
from accord.messaging.policy import PolicyConfig
from accord.messaging.sender import Sender
from accord.messaging.service import Messaging
from accord.platform import Platform
from tests.conftest import free_port
from tests.messaging.helpers import PushService, SmtpSink, person

TEMPLATE = {
    "name": "spring-push",
    "purpose": "promotions",
    "locales": {
        "en": {
            "push": {"title": "Spring offer", "body": "Hi {{ first_name }}", "deep_link": "shop://spring"},
            "email": {"subject": "Spring offer for {{ first_name }}", "text": "Hi {{ first_name }}"},
        }
    },
}


def decrypt(body: bytes, ua_private: ec.EllipticCurvePrivateKey, auth_secret: bytes) -> bytes:
    """What the browser does with an aes128gcm push body (RFC 8291), by http_ece on the receiving side."""
    plain: bytes = http_ece.decrypt(body, private_key=ua_private, auth_secret=auth_secret, version="aes128gcm")
    return plain


class Browser:
    """One browser's push subscription: its key pair and auth secret, as the browser keeps them."""

    def __init__(self, service: PushService, name: str) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.auth = os.urandom(16)
        public = self.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        self.path = f"/sub/{name}"
        self.address = f"{service.url}{self.path}#p256dh={b64url(public)}&auth={b64url(self.auth)}"

    def read(self, push: dict[str, Any]) -> dict[str, Any]:
        return dict(json.loads(decrypt(push["body"], self.key, self.auth)))


def vapid_key() -> tuple[str, str]:
    """(private key as the provider config takes it, public key as pushes carry it)."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = b64url(key.private_numbers().private_value.to_bytes(32, "big"))
    public = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return private, b64url(public)


def check_vapid(header: str, audience: str, public: str) -> dict[str, Any]:
    """Verify a push's VAPID Authorization header the way a push service does; its claims."""
    scheme, _, params = header.partition(" ")
    assert scheme == "vapid"
    fields = dict(part.strip().split("=", 1) for part in params.split(","))
    assert fields["k"] == public
    head, claims, signature = fields["t"].split(".")
    raw = unb64url(signature)
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(fields["k"]))
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    key.verify(der, f"{head}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))  # raises if forged
    assert json.loads(unb64url(head)) == {"typ": "JWT", "alg": "ES256"}
    decoded = dict(json.loads(unb64url(claims)))
    assert decoded["aud"] == audience
    return decoded


@pytest.fixture
def messaging(platform: Platform) -> Messaging:
    m = platform.messaging
    m.policy = PolicyConfig(quiet_hours=None)
    m.save_template(TEMPLATE)
    return m


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    with SmtpSink(free_port()) as sink:
        yield sink


def opt_in(platform: Platform, identifier: str, channel: str) -> None:
    platform.consents.set(identifier, "promotions", channel, "opted_in", "test", "consent")


def delivery(platform: Platform, profile_id: str) -> Any:
    with platform.state.connect() as conn:
        return conn.execute(sa.select(t.deliveries).where(t.deliveries.c.profile_id == profile_id)).one()


def test_web_push_is_encrypted_signed_retried_and_falls_back_when_the_subscription_is_gone(
    platform: Platform, messaging: Messaging, smtp: SmtpSink
) -> None:
    private, public = vapid_key()
    with PushService({"/sub/ann": [503], "/sub/bo": [410]}) as service:
        ann_browser, bo_browser = Browser(service, "ann"), Browser(service, "bo")
        messaging.add_provider("mail", "email", "smtp", {"port": smtp.controller.port, "from": "shop@example.com"})
        config = {"vapid_private_key": private, "vapid_subject": "mailto:push@shop.example", "ttl": 3600}
        messaging.add_provider("webpush", "push", "webpush", config)
        ann = person(platform, "ann", first_name="Ann", push_token=ann_browser.address)
        bo = person(platform, "bo", first_name="Bo", push_token=bo_browser.address, email="bo@example.com")
        for who in ("ann", "bo"):
            opt_in(platform, f"user_id:{who}", "push")
        opt_in(platform, "email:bo@example.com", "email")
        sent = messaging.send(ann, "spring-push", channels=["push"])
        messaging.send(bo, "spring-push", channels=["push", "email"])
        Sender(messaging, backoff=0.01).drain(timeout=30)

    to_ann = [p for p in service.pushes if p["path"] == "/sub/ann"]
    assert [p["status"] for p in to_ann] == [503, 201]  # a 5xx is retried
    last = to_ann[-1]
    assert (last["headers"]["Content-Encoding"], last["headers"]["TTL"]) == ("aes128gcm", "3600")
    assert b"Ann" not in last["body"]  # the push service sees ciphertext only
    assert ann_browser.read(last) == {
        "id": sent["id"],
        "title": "Spring offer",
        "body": "Hi Ann",
        "deep_link": "shop://spring",
    }
    with pytest.raises(http_ece.ECEException):  # another browser's keys cannot open it
        bo_browser.read(last)
    claims = check_vapid(last["headers"]["Authorization"], service.url, public)
    assert claims["sub"] == "mailto:push@shop.example" and claims["exp"] > 0
    row = delivery(platform, ann)
    assert (row.status, row.provider) == ("sent", "webpush")
    assert row.provider_message_id.startswith(service.url + "/m/")

    fallen = delivery(platform, bo)
    assert (fallen.status, fallen.channel) == ("sent", "email")
    assert "fell back from push to email" in fallen.reason
    assert [m["To"] for m in smtp.messages] == ["bo@example.com"]
    assert platform.processor.drain()
    names = [e["event"] for e in platform.events.timeline(bo).events if (e["event"] or "").startswith("Message")]
    assert names == ["Message Queued", "Message Bounced", "Message Sent"]


def test_a_failing_push_provider_fails_over_to_the_next(platform: Platform, messaging: Messaging) -> None:
    first, first_public = vapid_key()
    second, second_public = vapid_key()
    with PushService({"/sub/cy": [500, 502, 503]}) as service:
        browser = Browser(service, "cy")
        messaging.add_provider("push-a", "push", "webpush", {"vapid_private_key": first}, priority=1)
        messaging.add_provider("push-b", "push", "webpush", {"vapid_private_key": second}, priority=2)
        cy = person(platform, "cy", first_name="Cy", push_token=browser.address)
        opt_in(platform, "user_id:cy", "push")
        messaging.send(cy, "spring-push", channels=["push"])
        Sender(messaging, backoff=0.01, attempts_per_provider=3).drain(timeout=30)
    assert [p["status"] for p in service.pushes] == [500, 502, 503, 201]
    keys = [p["headers"]["Authorization"].rsplit("k=", 1)[1] for p in service.pushes]
    assert keys == [first_public] * 3 + [second_public]
    assert browser.read(service.pushes[-1])["body"] == "Hi Cy"
    row = delivery(platform, cy)
    assert (row.status, row.provider) == ("sent", "push-b")


def test_subscription_forms_and_payload_limits() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    auth = os.urandom(16)
    as_json = json.dumps(
        {"endpoint": "https://push.example/x", "keys": {"p256dh": b64url(public), "auth": b64url(auth)}}
    )
    parsed = parse_subscription(as_json)
    assert (parsed.endpoint, parsed.p256dh, parsed.auth) == ("https://push.example/x", public, auth)
    assert parse_subscription("https://push.example/bare").p256dh is None
    with pytest.raises(ValueError):
        parse_subscription("not-a-url")
    body = encrypt(b"hello", public, auth)
    assert decrypt(body, key, auth) == b"hello"
    assert encrypt(b"hello", public, auth) != body  # a fresh sender key and salt every time
    with pytest.raises(ValueError):
        encrypt(b"x" * 4000, public, auth)
