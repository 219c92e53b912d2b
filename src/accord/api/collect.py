"""The Segment-compatible collection endpoints: /v1/identify|track|page|screen|group|alias|batch and short forms."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar import Request, Response, post
from litestar.params import FromPath

from accord.collect.errors import CollectError
from accord.collect.intake import SHORT_TYPES, parse_request
from accord.collect.writer import JournalWriter
from accord.platform import Platform

_encode = msgspec.json.Encoder().encode
KINDS = {*SHORT_TYPES.values(), *SHORT_TYPES, "import"}


def error_body(code: str, message: str, **extra: Any) -> bytes:
    """The JSON error shape every endpoint uses."""
    return _encode({"error": {"code": code, "message": message, **extra}})


@post(
    "/v1/{kind:str}",
    summary="Segment-spec collection endpoint",
    description=(
        "Accepts one Segment message (identify, track, page, screen, group, alias; short forms i, t, p, s, g, a) "
        "or a batch (batch or b). Write key by HTTP Basic (writeKey as user, empty password) or `writeKey` in the "
        "body. JSON or text/plain bodies, optionally gzip-encoded; 32 KB per message, 500 KB per request, 2,500 "
        "messages per batch. A 200 means the accepted messages are durably committed; retries with the same "
        "messageId are deduplicated per source."
    ),
    tags=["collect"],
    status_code=200,
    request_max_body_size=600 * 1024,
)
async def collect_message(kind: FromPath[str], request: Request[Any, Any, Any]) -> Response[bytes]:
    """Validate, durably journal, and acknowledge Segment messages."""
    status, body = await handle_collect(
        request.app.state.platform,
        request.app.state.writer,
        kind,
        await request.body(),
        request.headers.get("content-encoding"),
        request.headers.get("authorization"),
    )
    return Response(body, status_code=status, media_type="application/json")


async def handle_collect(
    platform: Platform,
    writer: JournalWriter,
    kind: str,
    body: bytes,
    content_encoding: str | None,
    authorization: str | None,
) -> tuple[int, bytes]:
    """One collection request, framework-free: (HTTP status, JSON body). Used by the route and the fast path."""
    if kind not in KINDS:
        return 404, error_body("unknown_endpoint", f"no collection endpoint /v1/{kind}")
    received_at = datetime.now(UTC)
    try:
        intake = parse_request(body, content_encoding, authorization, kind, platform.lookup_source, received_at)
    except CollectError as exc:
        return exc.status, error_body(exc.code, exc.message)
    if intake.kind == "import" and intake.items:
        intake.drop_known(
            await asyncio.to_thread(platform.journal.known_ids, intake.source.id, [m for _, m in intake.items])
        )
    duplicates = intake.dropped
    await writer.submit(intake.journal_batch())
    if intake.rejects:
        await asyncio.to_thread(platform.record_rejects, intake, "http")
    rejected = [{"index": r.index, "code": r.code, "reason": r.reason} for r in intake.rejects]
    if not intake.items and not duplicates:
        first = intake.rejects[0]
        message = first.reason if len(rejected) == 1 else f"all {len(rejected)} messages were rejected"
        return 400, error_body(first.code, message, rejected=rejected)
    if not rejected and not duplicates:
        return 200, _OK if kind not in ("batch", "b", "import") else _encode(
            {"success": True, "accepted": len(intake.items), "duplicates": 0, "rejected": []}
        )
    return 200, _encode(
        {"success": True, "accepted": len(intake.items) + duplicates, "duplicates": duplicates, "rejected": rejected}
    )


_OK = _encode({"success": True, "accepted": 1, "duplicates": 0, "rejected": []})
