"""Web Push (RFC 8030) to a browser's push service: payload encrypted per RFC 8291, VAPID (RFC 8292) signing.

The push address is the browser's subscription, as PushSubscription.toJSON() gives it
(`{"endpoint": ..., "keys": {"p256dh": ..., "auth": ...}}`), or compactly `ENDPOINT#p256dh=...&auth=...`, or a
bare endpoint URL (then the push carries no payload and the service worker fetches the message itself).
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import http_ece
import httpx
import py_vapid
from cryptography.hazmat.primitives.asymmetric import ec

from accord.messaging.adapters.base import (
    DELIVERED,
    HARD_BOUNCE,
    PERMANENT,
    SENT,
    TRANSIENT,
    OutMessage,
    SendResult,
)
from accord.messaging.adapters.http import classify

RECORD_SIZE = 4096
MAX_PAYLOAD = 3993  # 4096 minus the header (86), the padding delimiter (1) and the AES-GCM tag (16)


def b64url(data: bytes) -> str:
    """Base64url without padding (the encoding Web Push uses for keys and tokens)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    """Inverse of b64url (padding optional)."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Subscription:
    """A browser's push subscription: where to post, and its keys (absent for a payload-less push)."""

    endpoint: str
    p256dh: bytes | None = None
    auth: bytes | None = None


def parse_subscription(address: str) -> Subscription:
    """The subscription an address names (JSON, ENDPOINT#p256dh=..&auth=.., or a bare endpoint)."""
    text = address.strip()
    if text.startswith("{"):
        data = json.loads(text)
        keys = data.get("keys") or {}
        endpoint = str(data["endpoint"])
        p256dh, auth = keys.get("p256dh"), keys.get("auth")
    else:
        endpoint, _, fragment = text.partition("#")
        query = parse_qs(fragment)
        p256dh, auth = (query.get("p256dh") or [""])[0], (query.get("auth") or [""])[0]
    if urlsplit(endpoint).scheme not in ("http", "https"):
        raise ValueError("a push subscription needs an http(s) endpoint")
    if p256dh and auth:
        return Subscription(endpoint, unb64url(str(p256dh)), unb64url(str(auth)))
    return Subscription(endpoint)


def encrypt(payload: bytes, ua_public: bytes, auth_secret: bytes) -> bytes:
    """RFC 8291 message encryption (aes128gcm, one record) with a fresh sender key, by `http_ece` (Mozilla's
    implementation of RFC 8188, the one pywebpush uses): header (salt, record size, sender key) + ciphertext."""
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"push payload is {len(payload)} bytes; the limit is {MAX_PAYLOAD}")
    sender = ec.generate_private_key(ec.SECP256R1())
    body: bytes = http_ece.encrypt(
        payload, private_key=sender, dh=ua_public, auth_secret=auth_secret, rs=RECORD_SIZE, version="aes128gcm"
    )
    return body


class Vapid:
    """RFC 8292 application server identification by `py_vapid`: an ES256 JWT per push service origin, reused
    until near expiry."""

    def __init__(self, private_key_b64: str, subject: str, lifetime: int = 12 * 3600) -> None:
        """PRIVATE_KEY_B64: the raw P-256 private value (32 bytes, base64url) or a PEM private key."""
        text = private_key_b64.strip()
        try:
            self.signer = (
                py_vapid.Vapid02.from_pem(text.encode())
                if text.startswith("-----BEGIN")
                else py_vapid.Vapid02.from_raw(text.encode())
            )
        except Exception as exc:  # py_vapid raises several kinds for a bad key
            raise ValueError(f"the VAPID key must be a P-256 private key: {exc}") from exc
        self.subject = subject
        self.lifetime = lifetime
        self._tokens: dict[str, tuple[float, str]] = {}

    def header(self, endpoint: str) -> str:
        """The Authorization header value for a push to ENDPOINT."""
        parts = urlsplit(endpoint)
        audience = f"{parts.scheme}://{parts.netloc}"
        now = time.time()
        cached = self._tokens.get(audience)
        if cached is None or cached[0] - now < 600:
            expires = int(now) + self.lifetime
            signed = self.signer.sign({"aud": audience, "exp": expires, "sub": self.subject})
            cached = (float(expires), str(signed["Authorization"]))
            self._tokens[audience] = cached
        return cached[1]


class WebPushAdapter:
    """Posts each message to its subscription's push service: encrypted JSON payload (title, body, deep link,
    delivery id), TTL and Urgency headers, VAPID when configured. 201/202 is accepted; 404/410 means the
    subscription is gone (a hard bounce: the person falls back to another channel); 429/5xx are retried."""

    def __init__(self, name: str, config: dict[str, Any]) -> None:
        self.name = name
        self.channel = "push"
        self.ttl = int(config.get("ttl", 24 * 3600))
        self.urgency = str(config.get("urgency", "normal"))
        if self.urgency not in ("very-low", "low", "normal", "high"):
            raise ValueError("urgency must be very-low, low, normal or high")
        self.delivered_on_accept = bool(config.get("delivered_on_accept", False))
        self.hard_bounce_statuses = set(config.get("hard_bounce_statuses", [404, 410]))
        key = config.get("vapid_private_key")
        self.vapid = Vapid(str(key), str(config.get("vapid_subject", "mailto:admin@localhost"))) if key else None
        self.client = httpx.Client(timeout=float(config.get("timeout", 5.0)))

    def _payload(self, message: OutMessage) -> bytes:
        f = message.fields
        data = {
            "id": message.delivery_id,
            "title": f.get("title", ""),
            "body": f.get("body", ""),
            "deep_link": f.get("deep_link"),
            "image_url": f.get("image_url"),
        }
        return json.dumps({k: v for k, v in data.items() if v}, ensure_ascii=False, separators=(",", ":")).encode()

    def send_batch(self, messages: list[OutMessage]) -> list[SendResult]:
        """One POST per message, on a pooled keep-alive client."""
        return [self._send_one(m) for m in messages]

    def _send_one(self, message: OutMessage) -> SendResult:
        try:
            sub = parse_subscription(message.address)
        except (ValueError, KeyError, TypeError) as exc:
            return SendResult(HARD_BOUNCE, None, f"not a push subscription: {exc}")
        headers = {"TTL": str(self.ttl), "Urgency": self.urgency}
        content = b""
        if sub.p256dh and sub.auth:
            try:
                content = encrypt(self._payload(message), sub.p256dh, sub.auth)
            except ValueError as exc:
                return SendResult(PERMANENT, None, f"cannot encrypt for this subscription: {exc}")
            headers["Content-Encoding"] = "aes128gcm"
            headers["Content-Type"] = "application/octet-stream"
        if self.vapid is not None:
            headers["Authorization"] = self.vapid.header(sub.endpoint)
        try:
            response = self.client.post(sub.endpoint, content=content, headers=headers)
        except httpx.TimeoutException as exc:
            return SendResult(TRANSIENT, None, f"timeout: {exc}")
        except httpx.HTTPError as exc:
            return SendResult(TRANSIENT, None, f"{type(exc).__name__}: {exc}")
        outcome = classify(response.status_code, self.hard_bounce_statuses)
        if outcome == SENT:
            location = response.headers.get("Location")
            return SendResult(DELIVERED if self.delivered_on_accept else SENT, location or message.delivery_id)
        return SendResult(outcome, None, f"HTTP {response.status_code}: {response.text[:200]}")

    def close(self) -> None:
        """Close the connection pool."""
        self.client.close()
