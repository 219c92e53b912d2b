"""Commerce events onto the customer timeline, in the caller's transaction (through `accord.collect.emit`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from babel.numbers import get_currency_precision

from accord.collect.emit import emit
from accord.collect.journal import Journal

SOURCE_NAME = "accord-commerce"

_TRAIT_TYPES = {"email": "email", "phone": "phone", "loyalty_card": "loyalty_card"}


def subject(customer_key: str | None) -> dict[str, Any]:
    """Segment identity fields for a normalised identifier key ('type:value'); {} when there is no customer."""
    if not customer_key:
        return {}
    id_type, _, value = customer_key.partition(":")
    if id_type == "user_id":
        return {"userId": value}
    if id_type == "anonymous_id":
        return {"anonymousId": value}
    if id_type in _TRAIT_TYPES:
        return {"context": {"traits": {_TRAIT_TYPES[id_type]: value}}}
    if id_type == "device_id":
        return {"context": {"device": {"id": value}}}
    return {"context": {"externalIds": [{"id": value, "type": id_type, "collection": "users", "encoding": "none"}]}}


def major(amount_minor: int, currency: str) -> float | str:
    """Minor units to the major-unit number Segment properties carry (exact; text beyond 15 digits)."""
    value = Decimal(amount_minor).scaleb(-get_currency_precision(currency))
    return str(value) if len(str(value)) > 15 else float(value)


def track(
    event: str,
    customer_key: str | None,
    channel: str,
    properties: Mapping[str, Any],
    at: datetime | None = None,
    message_id: str | None = None,
) -> dict[str, Any]:
    """One Segment track message about a customer, labelled with its channel."""
    message: dict[str, Any] = {"type": "track", "event": event, "properties": dict(properties)}
    ident = subject(customer_key)
    context: dict[str, Any] = dict(ident.pop("context", {}))
    context["channel"] = channel
    if "store_id" in properties:
        context["store"] = {"id": properties["store_id"]}
    message.update(ident)
    message["context"] = context
    if at is not None:
        message["timestamp"] = at.isoformat()
    if message_id is not None:
        message["messageId"] = message_id
    return message


def publish(conn: sa.Connection, journal: Journal, messages: Sequence[Mapping[str, Any]]) -> list[str]:
    """Append the messages to the journal in CONN's transaction."""
    if not messages:
        return []
    return emit(conn, journal, SOURCE_NAME, "store", messages)
