"""The channel adapter protocol: send a batch of rendered messages, classify each outcome."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

SENT = "sent"  # accepted by the provider; delivery is reported later (feedback webhook)
DELIVERED = "delivered"  # the provider's acceptance is the delivery (in-app inbox, SMTP when so configured)
TRANSIENT = "transient"  # try again later (timeout, 429, 5xx, connection refused)
PERMANENT = "permanent"  # this provider will never take it (bad credentials, rejected content)
HARD_BOUNCE = "hard_bounce"  # the address does not exist: fall back to another channel


@dataclass
class OutMessage:
    """One rendered message for one address; DELIVERY_ID is the idempotency key given to the provider."""

    delivery_id: str
    channel: str
    address: str
    fields: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    profile_id: str = ""


@dataclass
class SendResult:
    """The outcome of one message."""

    outcome: str
    provider_message_id: str | None = None
    error: str | None = None


class Adapter(Protocol):
    """A provider of one channel. Implementations must pass DELIVERY_ID on so that a resend is deduplicated."""

    name: str
    channel: str

    def send_batch(self, messages: list[OutMessage]) -> list[SendResult]:
        """Send MESSAGES (one result each, same order); never raise for a per-message failure."""

    def close(self) -> None:
        """Release connections."""


def config_str(config: dict[str, Any], key: str, default: str | None = None) -> str:
    """A required (or defaulted) string setting of a provider."""
    value = config.get(key, default)
    if value is None or value == "":
        raise ValueError(f"provider setting {key!r} is required")
    return str(value)
