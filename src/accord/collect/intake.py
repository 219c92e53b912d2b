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
from accord.collect.journal import JournalBatch
from accord.collect.segment import SourceInfo
from accord.collect.wire import MAX_MESSAGE_BYTES, BatchBody, SingleMessage, check_message, validate_message

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


@dataclass(frozen=True)
class Rejection:
    """A message that was not accepted: its position in the request and why."""

    index: int
    code: str
    reason: str
    payload: str | None = None


@dataclass
class Intake:
    """The outcome of validating one request: what to journal and what was rejected."""

    source: SourceInfo
    kind: str
    body: bytes
    received_at: datetime
    items: list[tuple[int, str]] = field(default_factory=list)
    rejects: list[Rejection] = field(default_factory=list)
    dropped: int = 0

    def drop_known(self, known: set[str]) -> None:
        """Leave out messages already loaded earlier (a re-imported file); they count as duplicates."""
        if known:
            kept = [(i, m) for i, m in self.items if m not in known]
            self.dropped += len(self.items) - len(kept)
            self.items = kept

    def journal_batch(self) -> JournalBatch:
        """The journal entry for the accepted messages."""
        return JournalBatch(self.source.id, self.received_at, self.kind, self.body, self.items)


class _KeyOnly(msgspec.Struct):
    writeKey: str | None = None


_batch_decoder = msgspec.json.Decoder(BatchBody)
_key_decoder = msgspec.json.Decoder(_KeyOnly)
_single_decoder = msgspec.json.Decoder(SingleMessage)
_header_keys: dict[str, str | None] = {}  # Authorization header -> write key: clients send the same one each time


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
    cached = _header_keys.get(authorization)
    if cached is not None:
        return cached
    key = _parse_basic(authorization)
    if key is not None:
        if len(_header_keys) >= 1024:
            _header_keys.clear()
        _header_keys[authorization] = key
    return key


def _parse_basic(authorization: str) -> str | None:
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "basic" or not token:
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        raise InvalidWriteKey("the Authorization header is not valid HTTP Basic credentials") from None
    return decoded.partition(":")[0] or None


def parse_request(
    body: bytes,
    content_encoding: str | None,
    authorization: str | None,
    kind: str,
    lookup: Callable[[str], SourceInfo | None],
    received_at: datetime,
) -> Intake:
    """Validate a request for endpoint KIND; raise CollectError for faults of the whole request.

    KIND is a message type, 'batch', or 'import' (a batch from a file import, where a message may carry no
    identity at all, e.g. a cash receipt at a till).
    """
    kind = SHORT_TYPES.get(kind, kind)
    data = decompress(body, content_encoding)
    is_batch = kind in ("batch", "import")
    single: SingleMessage | None = None
    if not is_batch:
        try:  # the common case in one pass; anything odd takes the exact path below, for its precise error
            single = _single_decoder.decode(data)
        except (msgspec.ValidationError, msgspec.DecodeError):
            single = None
    try:
        if is_batch:
            payload = _batch_decoder.decode(data)
            key = payload.writeKey
        elif single is not None:
            key = single.writeKey
        else:
            key = _key_decoder.decode(data).writeKey
    except msgspec.ValidationError as exc:
        raise CollectError(
            f"body is not a valid {'batch' if is_batch else 'message'}: {exc}",
            code="invalid_batch" if is_batch else "invalid_message",
        ) from exc
    except msgspec.DecodeError as exc:
        raise CollectError(f"body is not valid JSON: {exc}", code="invalid_json") from exc
    key = write_key_from_header(authorization) or key
    if not key:
        raise InvalidWriteKey(
            "no write key: send HTTP Basic auth with the write key as user name, or writeKey in the body"
        )
    source = lookup(key)
    if source is None:
        raise InvalidWriteKey("unknown write key")
    intake = Intake(source, kind, data, received_at)
    if is_batch:
        _validate_items(intake, payload, allow_no_identity=kind == "import")
    else:
        try:
            if single is not None:
                intake.items.append((0, check_message(single, data, received_at, kind)))
            else:
                intake.items.append((0, validate_message(data, received_at, kind)))
        except InvalidMessage as exc:
            intake.rejects.append(Rejection(0, exc.code, exc.reason, _preview(data)))
    return intake


def intake_import(messages: list[Any], source: SourceInfo, received_at: datetime) -> Intake:
    """Validate messages from a file import exactly like an HTTP batch (a message may carry no identity)."""
    return intake_import_body(msgspec.json.encode({"batch": messages}), source, received_at)


def intake_import_body(data: bytes, source: SourceInfo, received_at: datetime) -> Intake:
    """intake_import for a body already encoded as {"batch": [...]}."""
    intake = Intake(source, "import", data, received_at)
    _validate_items(intake, _batch_decoder.decode(data), allow_no_identity=True)
    return intake


def _validate_items(intake: Intake, payload: BatchBody, allow_no_identity: bool) -> None:
    items = payload.batch
    if len(items) > MAX_BATCH_MESSAGES:
        raise PayloadTooLarge(f"batch has {len(items)} messages; the limit is {MAX_BATCH_MESSAGES}")
    for index, item in enumerate(items):
        raw = bytes(item)
        try:
            message_id = validate_message(raw, intake.received_at, None, payload.sentAt, allow_no_identity)
        except InvalidMessage as exc:
            intake.rejects.append(Rejection(index, exc.code, exc.reason, _preview(raw)))
        else:
            intake.items.append((index, message_id))


def _preview(raw: bytes) -> str:
    return raw[:MAX_MESSAGE_BYTES].decode(errors="replace")
