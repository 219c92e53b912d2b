"""Segment-spec message validation: one raw message in, one normalised EventRecord out (or a precise reason)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec
from babel.numbers import get_currency_precision

from accord.collect.channels import campaign_of, derive_channel
from accord.collect.errors import InvalidMessage
from accord.collect.record import EventRecord
from accord.identity.normalize import identifier_key, normalise_type, normalise_value
from accord.identity.rules import IdentityRules
from accord.storage import new_id

MESSAGE_TYPES = frozenset({"identify", "track", "page", "screen", "group", "alias"})
MAX_MESSAGE_BYTES = 32 * 1024
_json = msgspec.json.Encoder()


@dataclass(frozen=True)
class SourceInfo:
    """What validation needs to know about the sending source."""

    id: str
    channel: str


def parse_time(value: Any, field: str) -> datetime | None:
    """ISO 8601 text to an aware UTC datetime (naive means UTC); None when absent."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidMessage("invalid_timestamp", f"{field} must be an ISO 8601 string, got {type(value).__name__}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidMessage("invalid_timestamp", f"{field} is not an ISO 8601 timestamp: {value[:64]!r}") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _id_text(value: Any, field: str) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidMessage("invalid_field", f"{field} must be a string or a number")
    text = str(value)
    if len(text) > 200:
        raise InvalidMessage("invalid_field", f"{field} is longer than 200 characters")
    return text


def _object(message: dict[str, Any], field: str) -> dict[str, Any]:
    value = message.get(field)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidMessage("invalid_field", f"{field} must be a JSON object, got {type(value).__name__}")
    return value


def to_minor_units(amount: Any, currency: str) -> int | None:
    """Major-unit amount (number or numeric string) to integer minor units of the ISO 4217 currency."""
    if amount is None or isinstance(amount, bool):
        return None
    try:
        value = Decimal(str(amount))
    except InvalidOperation:
        return None
    if not value.is_finite():
        return None
    precision = get_currency_precision(currency)
    return int((value * (10**precision)).to_integral_value())


def _currency(value: Any) -> str | None:
    if isinstance(value, str) and len(value.strip()) == 3 and value.strip().isalpha():
        return value.strip().upper()
    return None


def extract_identifiers(message: dict[str, Any], rules: IdentityRules) -> list[str]:
    """All identifiers a message carries, normalised, as 'type:value' keys in priority order."""
    found: dict[str, None] = {}
    context = message.get("context") if isinstance(message.get("context"), dict) else {}
    assert isinstance(context, dict)
    traits: dict[str, Any] = {}
    ctx_traits = context.get("traits")
    if isinstance(ctx_traits, dict):
        traits.update(ctx_traits)
    if message.get("type") == "identify" and isinstance(message.get("traits"), dict):
        traits.update(message["traits"])
    country = traits.get("country") if isinstance(traits.get("country"), str) else None
    address = traits.get("address")
    if country is None and isinstance(address, dict) and isinstance(address.get("country"), str):
        country = address["country"]
    region = country.strip().upper() if country and len(country.strip()) == 2 else None

    def add(id_type: str, raw: Any) -> None:
        value = normalise_value(id_type, raw, rules, region)
        if value is not None:
            found[identifier_key(id_type, value)] = None

    add("user_id", message.get("userId"))
    add("anonymous_id", message.get("anonymousId"))
    for trait, id_type in (("email", "email"), ("phone", "phone"), ("loyalty_card", "loyalty_card")):
        if trait in traits:
            add(id_type, traits[trait])
    device = context.get("device")
    if isinstance(device, dict):
        add("device_id", device.get("id"))
        add("push_token", device.get("token"))
    external = context.get("externalIds")
    if isinstance(external, list):
        for item in external:
            if isinstance(item, dict) and isinstance(item.get("type"), str):
                add(normalise_type(item["type"]), item.get("id"))
    return sorted(found, key=lambda key: (rules.rank(key.partition(":")[0]), key))


def _message_id(message: dict[str, Any]) -> str:
    given = message.get("messageId")
    if given is not None and given != "":
        if not isinstance(given, str | int) or isinstance(given, bool):
            raise InvalidMessage("invalid_field", "messageId must be a string")
        text = str(given)
        if len(text) > 200:
            raise InvalidMessage("invalid_field", "messageId is longer than 200 characters")
        return text
    # No id from the client: derive one from the content so that a retry of the same message dedupes.
    content = {k: v for k, v in message.items() if k not in ("sentAt", "receivedAt")}
    return "sha256:" + hashlib.sha256(_json.encode(content)).hexdigest()[:40]


def build_record(
    message: Any,
    source: SourceInfo,
    received_at: datetime,
    rules: IdentityRules,
    forced_type: str | None = None,
    batch_sent_at: Any = None,
    allow_no_identity: bool = False,
) -> EventRecord:
    """Validate one message and build its record; raises InvalidMessage with a precise reason."""
    if not isinstance(message, dict):
        raise InvalidMessage("invalid_message", f"a message must be a JSON object, got {type(message).__name__}")
    msg_type = forced_type or message.get("type")
    if not isinstance(msg_type, str) or msg_type not in MESSAGE_TYPES:
        raise InvalidMessage(
            "invalid_type", f"type must be one of {', '.join(sorted(MESSAGE_TYPES))}, got {msg_type!r}"
        )
    message["type"] = msg_type
    context = _object(message, "context")
    properties = _object(message, "properties")
    _object(message, "traits")
    _object(message, "integrations")
    user_id = _id_text(message.get("userId"), "userId")
    anonymous_id = _id_text(message.get("anonymousId"), "anonymousId")
    previous_id = None
    if msg_type == "alias":
        previous_id = _id_text(message.get("previousId"), "previousId")
        if previous_id is None or user_id is None:
            raise InvalidMessage("missing_field", "alias needs both userId and previousId")
    event = name = None
    if msg_type == "track":
        event = message.get("event")
        if not isinstance(event, str) or not event.strip():
            raise InvalidMessage("missing_field", "track needs a non-empty event name")
        if len(event) > 200:
            raise InvalidMessage("invalid_field", "event name is longer than 200 characters")
    elif msg_type in ("page", "screen"):
        raw_name = message.get("name")
        name = raw_name if isinstance(raw_name, str) and raw_name else None
    elif msg_type == "group" and _id_text(message.get("groupId"), "groupId") is None:
        raise InvalidMessage("missing_field", "group needs a groupId")
    message_id = _message_id(message)
    original = parse_time(message.get("timestamp"), "timestamp")
    sent_at = parse_time(message.get("sentAt", batch_sent_at), "sentAt")
    if original is not None and sent_at is not None:
        timestamp = received_at - (sent_at - original)  # corrects the client's clock skew
    else:
        timestamp = original or received_at
    if timestamp > received_at + timedelta(days=1):
        raise InvalidMessage("invalid_timestamp", "timestamp is more than a day in the future")
    identifiers = extract_identifiers(message, rules)
    if user_id is None and anonymous_id is None and not (allow_no_identity or identifiers):
        raise InvalidMessage("missing_identity", "a message needs a userId or an anonymousId")
    library = None
    lib = context.get("library")
    if isinstance(lib, dict) and isinstance(lib.get("name"), str):
        library = lib["name"][:100]
    campaign = campaign_of(message)
    channel = derive_channel(message, source.channel, library, campaign)
    currency = _currency(properties.get("currency"))
    revenue_minor = None
    amount = properties.get("revenue", properties.get("total"))
    if amount is not None:
        currency = currency or "USD"
        revenue_minor = to_minor_units(amount, currency)
        if revenue_minor is None:
            raise InvalidMessage("invalid_field", f"properties.revenue is not a number: {str(amount)[:40]!r}")
    store = properties.get("store_id")
    if store is None and isinstance(context.get("store"), dict):
        store = context["store"].get("id")
    message["messageId"] = message_id
    raw = _json.encode(message)
    if len(raw) > MAX_MESSAGE_BYTES:
        raise InvalidMessage("message_too_large", f"message is {len(raw)} bytes; the limit is {MAX_MESSAGE_BYTES}")
    return EventRecord(
        event_id=new_id(),
        source_id=source.id,
        message_id=message_id,
        type=msg_type,
        channel=channel,
        timestamp=timestamp,
        received_at=received_at,
        raw=raw,
        identifiers=identifiers,
        event=event,
        name=name,
        user_id=user_id,
        anonymous_id=anonymous_id,
        previous_id=previous_id,
        sent_at=sent_at,
        original_timestamp=original,
        revenue_minor=revenue_minor,
        currency=currency,
        store_id=str(store)[:64] if isinstance(store, str | int) and not isinstance(store, bool) else None,
        library=library,
        campaign_source=campaign.get("source"),
        campaign_medium=campaign.get("medium"),
        campaign_name=campaign.get("name"),
    )
