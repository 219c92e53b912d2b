"""Turns one HTTP request body of the Segment API into records to journal and rejections to report."""

from __future__ import annotations

import base64
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec

from accord.collect.errors import CollectError, InvalidMessage, InvalidWriteKey, PayloadTooLarge
from accord.collect.record import EventRecord
from accord.collect.segment import MAX_MESSAGE_BYTES, SourceInfo, build_record
from accord.identity.rules import IdentityRules

MAX_REQUEST_BYTES = 500 * 1024
MAX_BATCH_MESSAGES = 2500
SHORT_TYPES = {
    "i": "identify",
    "t": "track",
    "p": "page",
    "s": "screen",
    "g": "group",
    "a": "alias",
    "b": "batch",
}

_decoder = msgspec.json.Decoder()


@dataclass(frozen=True)
class Rejection:
    """A message that was not accepted: its position in the request and why."""

    index: int
    code: str
    reason: str
    payload: str | None = None


@dataclass
class Intake:
    """The outcome of validating one request."""

    source: SourceInfo
    records: list[EventRecord] = field(default_factory=list)
    rejects: list[Rejection] = field(default_factory=list)


def decompress(body: bytes, encoding: str | None) -> bytes:
    """The request body with any gzip/deflate content encoding removed, bounded by the request limit."""
    enc = (encoding or "").strip().lower()
    if enc in ("", "identity"):
        data = body
    elif enc in ("gzip", "x-gzip", "deflate"):
        wbits = 47 if enc != "deflate" else 15
        try:
            inflater = zlib.decompressobj(wbits)
            data = inflater.decompress(body, MAX_REQUEST_BYTES + 1)
        except zlib.error as exc:
            raise CollectError(f"body is not valid {enc} data: {exc}", code="invalid_encoding") from exc
        if inflater.unconsumed_tail:
            raise PayloadTooLarge(f"request body is over {MAX_REQUEST_BYTES} bytes when decompressed")
    else:
        raise CollectError(
            f"unsupported Content-Encoding {encoding!r}; use gzip or none",
            code="unsupported_encoding",
            status=415,
        )
    if len(data) > MAX_REQUEST_BYTES:
        raise PayloadTooLarge(f"request body is {len(data)} bytes; the limit is {MAX_REQUEST_BYTES}")
    return data


def write_key_from_header(authorization: str | None) -> str | None:
    """The write key of an HTTP Basic header ('writeKey:' with an empty password)."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "basic" or not token:
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        raise InvalidWriteKey("the Authorization header is not valid HTTP Basic credentials") from None
    return decoded.partition(":")[0] or None


def _merge_batch_level(item: Any, batch: dict[str, Any]) -> Any:
    if not isinstance(item, dict):
        return item
    for key in ("context", "integrations"):
        shared = batch.get(key)
        if isinstance(shared, dict) and shared:
            own = item.get(key)
            item[key] = {**shared, **own} if isinstance(own, dict) else (own if own is not None else dict(shared))
    return item


def parse_request(
    body: bytes,
    content_encoding: str | None,
    authorization: str | None,
    kind: str,
    lookup: Callable[[str], SourceInfo | None],
    rules: IdentityRules,
    received_at: datetime,
) -> Intake:
    """Validate a request for endpoint KIND; raise CollectError for faults of the whole request.

    KIND is a message type, 'batch', or 'import' (a batch from a file import, where a message may carry no
    identity at all, e.g. a cash receipt at a till).
    """
    kind = SHORT_TYPES.get(kind, kind)
    data = decompress(body, content_encoding)
    try:
        payload = _decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise CollectError(f"body is not valid JSON: {exc}", code="invalid_json") from exc
    if not isinstance(payload, dict):
        raise CollectError("body must be a JSON object", code="invalid_json")
    key = write_key_from_header(authorization) or payload.get("writeKey")
    if not isinstance(key, str) or not key:
        raise InvalidWriteKey(
            "no write key: send HTTP Basic auth with the write key as user name, or writeKey in the body"
        )
    source = lookup(key)
    if source is None:
        raise InvalidWriteKey("unknown write key")
    intake = Intake(source)
    if kind in ("batch", "import"):
        items = payload.get("batch")
        if not isinstance(items, list):
            raise CollectError("a batch needs a 'batch' array of messages", code="invalid_batch")
        if len(items) > MAX_BATCH_MESSAGES:
            raise PayloadTooLarge(f"batch has {len(items)} messages; the limit is {MAX_BATCH_MESSAGES}")
        sent_at = payload.get("sentAt")
        for index, item in enumerate(items):
            try:
                message = _merge_batch_level(item, payload)
                intake.records.append(build_record(message, source, received_at, rules, batch_sent_at=sent_at))
            except InvalidMessage as exc:
                intake.rejects.append(Rejection(index, exc.code, exc.reason, _preview(item)))
    else:
        if len(data) > MAX_MESSAGE_BYTES:
            raise PayloadTooLarge(f"message is {len(data)} bytes; the limit is {MAX_MESSAGE_BYTES}")
        payload.pop("writeKey", None)
        try:
            intake.records.append(build_record(payload, source, received_at, rules, forced_type=kind))
        except InvalidMessage as exc:
            intake.rejects.append(Rejection(0, exc.code, exc.reason, _preview(payload)))
    return intake


def _preview(item: Any) -> str | None:
    try:
        return msgspec.json.encode(item).decode()[:MAX_MESSAGE_BYTES]
    except (TypeError, msgspec.EncodeError):
        return repr(item)[:1000]
