"""Signed links: compact HMAC-SHA256 tokens for confirmation, unsubscribe, preference-centre and tracking links."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from pathlib import Path
from typing import Any


class InvalidToken(ValueError):
    """A link token that is malformed, forged or expired."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(secret: bytes, purpose: str, payload: dict[str, Any], ttl_seconds: int | None = None) -> str:
    """A token carrying PAYLOAD for PURPOSE (a token for one purpose never verifies for another)."""
    body = dict(payload)
    if ttl_seconds is not None:
        body["exp"] = int(time.time()) + ttl_seconds
    raw = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
    mac = hmac.new(secret, purpose.encode() + b"." + raw, hashlib.sha256).digest()[:16]
    return _b64(raw) + "." + _b64(mac)


def verify(secret: bytes, purpose: str, token: str) -> dict[str, Any]:
    """The payload of a valid token; InvalidToken otherwise."""
    try:
        raw_part, mac_part = token.split(".", 1)
        raw = _unb64(raw_part)
        mac = _unb64(mac_part)
    except (ValueError, TypeError) as exc:
        raise InvalidToken("malformed link token") from exc
    expected = hmac.new(secret, purpose.encode() + b"." + raw, hashlib.sha256).digest()[:16]
    if not hmac.compare_digest(mac, expected):
        raise InvalidToken("link token signature does not match")
    try:
        payload: dict[str, Any] = json.loads(raw)
    except ValueError as exc:
        raise InvalidToken("malformed link token") from exc
    if "exp" in payload and int(payload["exp"]) < time.time():
        raise InvalidToken("link token has expired")
    return payload


def sign_value(secret: bytes, purpose: str, value: str) -> str:
    """A short token for a plain VALUE (a delivery id, an identifier): 'b64(VALUE).MAC' (no JSON: hot paths)."""
    raw = value.encode()
    mac = hmac.digest(secret, purpose.encode() + b"." + raw, "sha256")[:12]
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode() + "." + base64.urlsafe_b64encode(mac).decode()


def verify_value(secret: bytes, purpose: str, token: str) -> str:
    """The VALUE of a valid sign_value token; InvalidToken otherwise."""
    encoded, _, mac = token.rpartition(".")
    try:
        raw, given = _unb64(encoded), _unb64(mac)
        value = raw.decode()
    except (ValueError, TypeError) as exc:
        raise InvalidToken("malformed link token") from exc
    expected = hmac.digest(secret, purpose.encode() + b"." + raw, "sha256")[:12]
    if not value or not hmac.compare_digest(given, expected):
        raise InvalidToken("link token signature does not match")
    return value


def load_secret(path: Path, env_value: str | None = None) -> bytes:
    """The signing secret: ENV_VALUE if given, else the one kept in PATH (created once, mode 0600)."""
    if env_value:
        return env_value.encode()
    if path.exists():
        return path.read_text().strip().encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip().encode()
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value.encode()
