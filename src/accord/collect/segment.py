"""Segment message enrichment: one validated message in, one normalised EventRecord out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec
from babel.numbers import get_currency_precision

from accord.collect.channels import campaign_of, derive_channel
from accord.collect.errors import InvalidMessage
from accord.collect.record import EventRecord
from accord.collect.wire import event_time, parse_time
from accord.identity.normalize import identifier_key, normalise_type, normalise_value
from accord.identity.rules import IdentityRules
from accord.storage import new_id

_json = msgspec.json.Encoder()


@dataclass(frozen=True)
class SourceInfo:
    """What validation needs to know about the sending source."""

    id: str
    channel: str


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
    return sorted(found, key=rules.key_order)


def merge_batch_level(item: dict[str, Any], batch: dict[str, Any]) -> dict[str, Any]:
    """Batch-level context and integrations apply to every item (the item's own keys win)."""
    for key in ("context", "integrations"):
        shared = batch.get(key)
        if isinstance(shared, dict) and shared:
            own = item.get(key)
            item[key] = {**shared, **own} if isinstance(own, dict) else dict(shared)
    return item


def build_record(
    message: dict[str, Any],
    source: SourceInfo,
    received_at: datetime,
    rules: IdentityRules,
    message_id: str,
    forced_type: str | None = None,
    batch_sent_at: str | None = None,
) -> EventRecord:
    """Enrich one validated message (see wire.validate_message) into its record: identifiers, channel, money.

    Never rejects: a value that cannot be used (a revenue that is not a number, an invalid phone) is left out of
    the typed columns and stays in the raw message.
    """
    msg_type = forced_type or str(message.get("type"))
    message["type"] = msg_type
    message.pop("writeKey", None)
    context = message.get("context") if isinstance(message.get("context"), dict) else {}
    properties = message.get("properties") if isinstance(message.get("properties"), dict) else {}
    assert isinstance(context, dict) and isinstance(properties, dict)
    user_id = _text(message.get("userId"))
    anonymous_id = _text(message.get("anonymousId"))
    previous_id = _text(message.get("previousId")) if msg_type == "alias" else None
    event = message.get("event") if msg_type == "track" else None
    name = message.get("name") if msg_type in ("page", "screen") and isinstance(message.get("name"), str) else None
    original = _time(message.get("timestamp"))
    sent_at = _time(message.get("sentAt", batch_sent_at))
    if batch_sent_at is not None and "sentAt" not in message:
        message["sentAt"] = batch_sent_at
    timestamp = event_time(original, sent_at, received_at)
    library = None
    lib = context.get("library")
    if isinstance(lib, dict) and isinstance(lib.get("name"), str):
        library = lib["name"][:100]
    campaign = campaign_of(message)
    currency = _currency(properties.get("currency"))
    revenue_minor = None
    amount = properties.get("revenue", properties.get("total"))
    if amount is not None:
        currency = currency or "USD"
        revenue_minor = to_minor_units(amount, currency)
        if revenue_minor is None:
            currency = None
    store = properties.get("store_id")
    if store is None and isinstance(context.get("store"), dict):
        store = context["store"].get("id")
    message["messageId"] = message_id
    return EventRecord(
        event_id=new_id(),
        source_id=source.id,
        message_id=message_id,
        type=msg_type,
        channel=derive_channel(message, source.channel, library, campaign),
        timestamp=timestamp,
        received_at=received_at,
        raw=_json.encode(message),
        identifiers=extract_identifiers(message, rules),
        event=event if isinstance(event, str) else None,
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


def _text(value: Any) -> str | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    return str(value)


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_time(value, "timestamp")
    except InvalidMessage:
        return None
