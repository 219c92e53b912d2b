"""Fast wire-level validation of Segment messages: typed decoding of only the fields the spec requires.

The intake checks every message here before acknowledging it, so that a 200 is only given for messages the
processor will load; enrichment (identifiers, channel, revenue) happens after the acknowledgement.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import msgspec

from accord.collect.errors import InvalidMessage

MESSAGE_TYPES = frozenset({"identify", "track", "page", "screen", "group", "alias"})
MAX_MESSAGE_BYTES = 32 * 1024
IdValue = str | int | float | None


class _AnyObject(msgspec.Struct):
    """Any JSON object: decoding checks that it is one and skips its contents (in C, without building it)."""


class MessageHead(msgspec.Struct):
    """The fields of a Segment message that decide whether it is valid."""

    type: str | None = None
    userId: IdValue = None
    anonymousId: IdValue = None
    previousId: IdValue = None
    groupId: IdValue = None
    event: str | None = None
    messageId: str | int | None = None
    timestamp: str | None = None
    sentAt: str | None = None
    context: _AnyObject | None = None
    properties: _AnyObject | None = None
    traits: _AnyObject | None = None
    integrations: _AnyObject | None = None


class SingleMessage(MessageHead):
    """A single-message request: the message's own fields and the body-level write key, decoded in one pass."""

    writeKey: str | None = None


class BatchBody(msgspec.Struct):
    """A batch request: the items stay raw until each is validated on its own."""

    batch: list[msgspec.Raw]
    writeKey: str | None = None
    sentAt: str | None = None
    context: msgspec.Raw = msgspec.Raw(b"null")
    integrations: msgspec.Raw = msgspec.Raw(b"null")


_head = msgspec.json.Decoder(MessageHead)


def parse_time(value: str | None, field: str) -> datetime | None:
    """ISO 8601 text to an aware UTC datetime (naive means UTC); None when absent."""
    if value is None or value == "":
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidMessage("invalid_timestamp", f"{field} is not an ISO 8601 timestamp: {value[:64]!r}") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def event_time(original: datetime | None, sent_at: datetime | None, received_at: datetime) -> datetime:
    """timestamp = receivedAt - (sentAt - originalTimestamp): corrects the sending device's clock."""
    if original is not None and sent_at is not None:
        return received_at - (sent_at - original)
    return original or received_at


def _id_ok(value: IdValue, field: str) -> bool:
    if value is None or value == "":
        return False
    if isinstance(value, str) and len(value) > 200:
        raise InvalidMessage("invalid_field", f"{field} is longer than 200 characters")
    return True


def validate_message(
    raw: bytes,
    received_at: datetime,
    forced_type: str | None = None,
    batch_sent_at: str | None = None,
    allow_no_identity: bool = False,
) -> str:
    """Check one message against the Segment spec; returns its message id (generated from content if absent)."""
    if len(raw) > MAX_MESSAGE_BYTES:
        raise InvalidMessage("message_too_large", f"message is {len(raw)} bytes; the limit is {MAX_MESSAGE_BYTES}")
    try:
        head = _head.decode(raw)
    except msgspec.ValidationError as exc:
        raise InvalidMessage("invalid_field", str(exc)) from None
    except msgspec.DecodeError as exc:
        raise InvalidMessage("invalid_message", f"a message must be a JSON object: {exc}") from None
    return check_message(head, raw, received_at, forced_type, batch_sent_at, allow_no_identity)


def check_message(
    head: MessageHead,
    raw: bytes,
    received_at: datetime,
    forced_type: str | None = None,
    batch_sent_at: str | None = None,
    allow_no_identity: bool = False,
) -> str:
    """validate_message for a message already decoded into HEAD (RAW is its text)."""
    if len(raw) > MAX_MESSAGE_BYTES:
        raise InvalidMessage("message_too_large", f"message is {len(raw)} bytes; the limit is {MAX_MESSAGE_BYTES}")
    msg_type = forced_type or head.type
    if msg_type not in MESSAGE_TYPES:
        raise InvalidMessage(
            "invalid_type", f"type must be one of {', '.join(sorted(MESSAGE_TYPES))}, got {head.type!r}"
        )
    has_user = _id_ok(head.userId, "userId")
    has_anon = _id_ok(head.anonymousId, "anonymousId")
    if msg_type == "alias":
        if not (has_user and _id_ok(head.previousId, "previousId")):
            raise InvalidMessage("missing_field", "alias needs both userId and previousId")
    elif msg_type == "track":
        if head.event is None or not head.event.strip():
            raise InvalidMessage("missing_field", "track needs a non-empty event name")
        if len(head.event) > 200:
            raise InvalidMessage("invalid_field", "event name is longer than 200 characters")
    elif msg_type == "group" and not _id_ok(head.groupId, "groupId"):
        raise InvalidMessage("missing_field", "group needs a groupId")
    if not (has_user or has_anon or allow_no_identity):
        raise InvalidMessage("missing_identity", "a message needs a userId or an anonymousId")
    original = parse_time(head.timestamp, "timestamp")
    sent_at = parse_time(head.sentAt if head.sentAt is not None else batch_sent_at, "sentAt")
    if event_time(original, sent_at, received_at) > received_at + timedelta(days=1):
        raise InvalidMessage("invalid_timestamp", "timestamp is more than a day in the future")
    if head.messageId is not None and head.messageId != "":
        message_id = str(head.messageId)
        if len(message_id) > 200:
            raise InvalidMessage("invalid_field", "messageId is longer than 200 characters")
        return message_id
    # No id from the client: derive one from the content, so a retry of the same bytes dedupes.
    return "sha256:" + hashlib.sha256(raw).hexdigest()[:40]
