"""HTTP providers: a configurable generic one, Twilio-shaped SMS, FCM-shaped push, and outgoing webhooks."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import httpx

from accord.messaging.adapters.base import (
    DELIVERED,
    HARD_BOUNCE,
    PERMANENT,
    SENT,
    TRANSIENT,
    OutMessage,
    SendResult,
    config_str,
)


def classify(status: int, hard_bounce_statuses: set[int]) -> str:
    """HTTP status -> outcome: 2xx sent, 408/425/429/5xx transient, configured ones hard bounce, else permanent."""
    if 200 <= status < 300:
        return SENT
    if status in (408, 425, 429) or status >= 500:
        return TRANSIENT
    if status in hard_bounce_statuses:
        return HARD_BOUNCE
    return PERMANENT


class HttpAdapter:
    """POSTs one request per message with an idempotency key; the provider's shape is chosen by KIND."""

    def __init__(self, name: str, channel: str, kind: str, config: dict[str, Any]) -> None:
        self.name = name
        self.channel = channel
        self.kind = kind
        self.config = config
        self.url = config_str(config, "url", "https://api.twilio.com" if kind == "twilio" else None)
        self.delivered_on_accept = bool(config.get("delivered_on_accept", False))
        self.hard_bounce_statuses = set(config.get("hard_bounce_statuses", [404, 410, 422]))
        headers = {str(k): str(v) for k, v in config.get("headers", {}).items()}
        auth: tuple[str, str] | None = None
        if kind == "twilio":
            auth = (config_str(config, "account_sid"), config_str(config, "auth_token"))
        elif config.get("bearer_token"):
            headers["Authorization"] = f"Bearer {config['bearer_token']}"
        self.client = httpx.Client(timeout=float(config.get("timeout", 5.0)), headers=headers, auth=auth)

    def _request(self, message: OutMessage) -> tuple[str, dict[str, Any]]:
        """(url, httpx request kwargs) for MESSAGE in this provider's shape."""
        f = message.fields
        if self.kind == "twilio":
            url = f"{self.url.rstrip('/')}/2010-04-01/Accounts/{self.config['account_sid']}/Messages.json"
            form = {"To": message.address, "From": str(self.config.get("from", "")), "Body": f.get("text", "")}
            return url, {"data": form, "headers": {"I-Twilio-Idempotency-Token": message.delivery_id}}
        if self.kind == "fcm":
            body = {
                "message": {
                    "token": message.address,
                    "notification": {"title": f.get("title", ""), "body": f.get("body", "")},
                    "data": {"delivery_id": message.delivery_id, "deep_link": f.get("deep_link") or ""},
                }
            }
            return self.url, {"json": body, "headers": {"Idempotency-Key": message.delivery_id}}
        payload = {"id": message.delivery_id, "channel": message.channel, "to": message.address, **f}
        raw = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        headers = {"Idempotency-Key": message.delivery_id, "Content-Type": "application/json"}
        if self.kind == "webhook" and self.config.get("secret"):
            mac = hmac.new(str(self.config["secret"]).encode(), raw, hashlib.sha256).hexdigest()
            headers["X-Accord-Signature"] = f"sha256={mac}"
        return self.url, {"content": raw, "headers": headers}

    def send_batch(self, messages: list[OutMessage]) -> list[SendResult]:
        """One POST per message on a pooled keep-alive client."""
        return [self._send_one(m) for m in messages]

    def _send_one(self, message: OutMessage) -> SendResult:
        url, kwargs = self._request(message)
        try:
            response = self.client.post(url, **kwargs)
        except httpx.TimeoutException as exc:
            return SendResult(TRANSIENT, None, f"timeout: {exc}")
        except httpx.HTTPError as exc:
            return SendResult(TRANSIENT, None, f"{type(exc).__name__}: {exc}")
        outcome = classify(response.status_code, self.hard_bounce_statuses)
        provider_id: str | None = None
        try:
            data = response.json()
        except ValueError:
            data = None
        if isinstance(data, dict):
            found = data.get("sid") or data.get("name") or data.get("id") or data.get("message_id")
            provider_id = str(found) if found is not None else None
        if outcome == SENT:
            return SendResult(DELIVERED if self.delivered_on_accept else SENT, provider_id or message.delivery_id)
        return SendResult(outcome, provider_id, f"HTTP {response.status_code}: {response.text[:200]}")

    def close(self) -> None:
        """Close the connection pool."""
        self.client.close()


class InAppAdapter:
    """The in-app inbox: the message is stored with its delivery; the app lists it through the inbox API."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.channel = "in_app"

    def send_batch(self, messages: list[OutMessage]) -> list[SendResult]:
        """Every message is delivered to the inbox at once."""
        return [SendResult(DELIVERED, m.delivery_id) for m in messages]

    def close(self) -> None:
        """Nothing to release."""


def make_adapter(name: str, channel: str, kind: str, config: dict[str, Any]) -> Any:
    """The adapter for a provider row."""
    if kind == "smtp":
        from accord.messaging.adapters.smtp import SmtpAdapter

        return SmtpAdapter(name, config)
    if kind == "in_app":
        return InAppAdapter(name)
    if kind == "webpush":
        from accord.messaging.adapters.webpush import WebPushAdapter

        if channel != "push":
            raise ValueError("a webpush provider serves the push channel")
        return WebPushAdapter(name, config)
    if kind in ("print_file", "call_list"):
        from accord.messaging.adapters.offline import CallListAdapter, PrintFileAdapter

        wanted = "direct_mail" if kind == "print_file" else "call"
        if channel != wanted:
            raise ValueError(f"a {kind} provider serves the {wanted} channel")
        return PrintFileAdapter(name, config) if kind == "print_file" else CallListAdapter(name)
    if kind in ("http", "twilio", "fcm", "webhook"):
        return HttpAdapter(name, channel, kind, config)
    raise ValueError(
        f"unknown provider kind {kind!r}; known: smtp, http, twilio, fcm, webpush, webhook, in_app, print_file, "
        "call_list"
    )
