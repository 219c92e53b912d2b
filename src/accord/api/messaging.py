"""HTTP API of messaging: templates, sends, broadcasts, providers, deliveries, hold-outs, feedback, inbox, tracking."""

from __future__ import annotations

import base64
import contextlib
import threading
from datetime import datetime
from typing import Any

import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.response import Redirect

from accord.api.admin import ApiError
from accord.consent import signing
from accord.messaging.broadcasts import broadcast_report, create_broadcast
from accord.messaging.purchases import purchases_of
from accord.messaging.sender import Sender
from accord.messaging.service import Messaging, MessagingError
from accord.platform import Platform
from accord.profiles import service as profiles

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


def _messaging(request: Request[Any, Any, Any]) -> Messaging:
    platform: Platform = request.app.state.platform
    return platform.messaging


def _profile_id(request: Request[Any, Any, Any], profile_id: str | None, identifier: str | None) -> str:
    if profile_id:
        return profile_id
    if not identifier:
        raise ApiError(400, "missing_recipient", "give profile_id or identifier (TYPE:VALUE)")
    platform: Platform = request.app.state.platform
    try:
        pid = profiles.resolve(platform.state, platform.rules, identifier)
    except profiles.InvalidIdentifier as exc:
        raise ApiError(400, "invalid_identifier", str(exc)) from exc
    if pid is None:
        raise ApiError(404, "unknown_profile", f"no profile has identifier {identifier}")
    return pid


def feedback_key(secret: bytes, provider: str) -> str:
    """The key a provider's webhook URL carries (?key=...), so that feedback needs no admin token."""
    return signing.sign(secret, "feedback", {"p": provider})


class SendIn(msgspec.Struct):
    """One message to one person."""

    template: str
    profile_id: str | None = None
    identifier: str | None = None
    channels: list[str] | None = None
    purpose: str | None = None
    kind: str = "marketing"
    idempotency_key: str | None = None
    extra: dict[str, Any] = {}
    sender: str | None = None
    at: datetime | None = None
    tags: list[str] = []


class BroadcastIn(msgspec.Struct):
    """A template to an audience (segment, profile ids or identifiers)."""

    name: str
    template: str
    segment: str | None = None
    profile_ids: list[str] | None = None
    identifiers: list[str] | None = None
    channels: list[str] | None = None
    purpose: str | None = None
    at: datetime | None = None
    local_time: str | None = None
    holdout_percent: float = 0.0
    variants: list[dict[str, Any]] | None = None
    rate_per_second: float | None = None
    tags: list[str] = []
    id: str | None = None
    promotes: dict[str, Any] | None = None  # {"skus", "categories", "within"}: instead of the templates' own


class ProviderIn(msgspec.Struct):
    """A channel provider (kind: smtp, http, twilio, fcm, webpush, webhook, in_app, print_file, call_list)."""

    name: str
    channel: str
    kind: str
    config: dict[str, Any] = {}
    priority: int = 100
    cost_minor: int = 0
    currency: str = "EUR"


class SuppressionIn(msgspec.Struct):
    """Hold a profile out of bulk messages."""

    profile_id: str
    reason: str
    until: datetime | None = None
    note: str | None = None


class CallOutcomeIn(msgspec.Struct):
    """An agent's outcome of a call task."""

    outcome: str  # reached | no_answer | refused
    agent: str | None = None
    note: str | None = None


class ErasureIn(msgspec.Struct):
    """A data-subject erasure request."""

    identifier: str
    requested_by: str = "api"


def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except MessagingError as exc:
        raise ApiError(exc.status, exc.code, exc.message) from exc


class MessagingController(Controller):
    """Messaging endpoints under /api/v1 (admin token, except provider feedback which carries its own key)."""

    path = "/api/v1"
    tags = ["messaging"]

    @post("/templates", summary="Create or replace a template", status_code=200, sync_to_thread=True)
    def save_template(self, request: Request[Any, Any, Any], data: JSONBody[dict[str, Any]]) -> dict[str, Any]:
        return dict(_call(_messaging(request).save_template, data))

    @get("/templates", summary="List templates", sync_to_thread=True)
    def list_templates(self, request: Request[Any, Any, Any]) -> list[dict[str, Any]]:
        return list(_call(_messaging(request).list_templates))

    @get("/templates/{name:str}/preview", summary="Render a template for a profile", sync_to_thread=True)
    def preview(
        self,
        request: Request[Any, Any, Any],
        name: FromPath[str],
        profile_id: FromQuery[str | None] = None,
        identifier: FromQuery[str | None] = None,
        locale: FromQuery[str | None] = None,
    ) -> dict[str, Any]:
        pid = _profile_id(request, profile_id, identifier) if (profile_id or identifier) else None
        return dict(_call(_messaging(request).preview, name, pid, locale=locale))

    @post("/messages", summary="Send one message (policy, render, outbox)", status_code=202, sync_to_thread=True)
    def send(self, request: Request[Any, Any, Any], data: JSONBody[SendIn]) -> dict[str, Any]:
        pid = _profile_id(request, data.profile_id, data.identifier)
        key = data.idempotency_key or request.headers.get("idempotency-key")
        return dict(
            _call(
                _messaging(request).send,
                pid,
                data.template,
                channels=data.channels,
                purpose=data.purpose,
                kind=data.kind,
                idempotency_key=key,
                extra=data.extra,
                sender=data.sender,
                at=data.at,
                tags=data.tags,
            )
        )

    @post("/broadcasts", summary="Plan a broadcast to a segment or list", status_code=202, sync_to_thread=True)
    def broadcast(self, request: Request[Any, Any, Any], data: JSONBody[BroadcastIn]) -> dict[str, Any]:
        audience: dict[str, Any]
        if data.segment:
            audience = {"segment": data.segment}
        elif data.profile_ids is not None:
            audience = {"profile_ids": data.profile_ids}
        elif data.identifiers is not None:
            audience = {"identifiers": data.identifiers}
        else:
            raise ApiError(400, "invalid_audience", "give segment, profile_ids or identifiers")
        return dict(
            _call(
                create_broadcast,
                _messaging(request),
                data.name,
                data.template,
                audience,
                channels=data.channels,
                purpose=data.purpose,
                at=data.at,
                local_time=data.local_time,
                holdout_percent=data.holdout_percent,
                variants=data.variants,
                rate_per_second=data.rate_per_second,
                tags=data.tags,
                broadcast_id=data.id,
                promotes=data.promotes,
            )
        )

    @get("/broadcasts/{broadcast_id:str}", summary="Broadcast results by variant and status", sync_to_thread=True)
    def broadcast_report(self, request: Request[Any, Any, Any], broadcast_id: FromPath[str]) -> dict[str, Any]:
        return dict(_call(broadcast_report, _messaging(request), broadcast_id))

    @get("/profiles/{profile_id:str}/deliveries", summary="Messages and decisions of a profile", sync_to_thread=True)
    def deliveries(self, request: Request[Any, Any, Any], profile_id: FromPath[str]) -> list[dict[str, Any]]:
        return list(_call(_messaging(request).deliveries_of, profile_id))

    @get(
        "/profiles/{profile_id:str}/purchases",
        summary="What messaging holds as bought by a profile (the already-purchased rule)",
        sync_to_thread=True,
    )
    def purchases(self, request: Request[Any, Any, Any], profile_id: FromPath[str]) -> list[dict[str, Any]]:
        return purchases_of(_messaging(request).engine, profile_id)

    @post(
        "/purchases/rebuild",
        summary="Rebuild messaging's record of purchases from the event store",
        status_code=200,
        sync_to_thread=True,
    )
    def rebuild_purchases(self, request: Request[Any, Any, Any]) -> dict[str, Any]:
        platform: Platform = request.app.state.platform
        if platform.purchases is None:
            raise ApiError(409, "purchases_unavailable", "this server keeps no record of purchases")
        return platform.purchases.rebuild()

    @get("/deliveries/{delivery_id:str}", summary="One delivery with its content", sync_to_thread=True)
    def delivery(self, request: Request[Any, Any, Any], delivery_id: FromPath[str]) -> dict[str, Any]:
        return dict(_call(_messaging(request).delivery, delivery_id))

    @post("/providers", summary="Add or replace a channel provider", status_code=201, sync_to_thread=True)
    def add_provider(self, request: Request[Any, Any, Any], data: JSONBody[ProviderIn]) -> dict[str, Any]:
        messaging = _messaging(request)
        out = dict(
            _call(
                messaging.add_provider,
                data.name,
                data.channel,
                data.kind,
                data.config,
                data.priority,
                data.cost_minor,
                data.currency,
            )
        )
        out["feedback_url"] = (
            f"{messaging.base_url}/api/v1/feedback/{data.name}?key={feedback_key(messaging.secret, data.name)}"
        )
        return out

    @get("/providers", summary="List channel providers", sync_to_thread=True)
    def list_providers(self, request: Request[Any, Any, Any]) -> list[dict[str, Any]]:
        return list(_call(_messaging(request).list_providers))

    @delete("/providers/{name:str}", summary="Remove a provider", status_code=204, sync_to_thread=True)
    def remove_provider(self, request: Request[Any, Any, Any], name: FromPath[str]) -> None:
        _call(_messaging(request).remove_provider, name)

    @post("/suppressions", summary="Hold a profile out of bulk messages", status_code=201, sync_to_thread=True)
    def suppress(self, request: Request[Any, Any, Any], data: JSONBody[SuppressionIn]) -> dict[str, Any]:
        _call(_messaging(request).suppress, data.profile_id, data.reason, data.until, data.note)
        return {"profile_id": data.profile_id, "reason": data.reason}

    @delete(
        "/suppressions/{profile_id:str}/{reason:str}", summary="End a hold-out", status_code=204, sync_to_thread=True
    )
    def lift(self, request: Request[Any, Any, Any], profile_id: FromPath[str], reason: FromPath[str]) -> None:
        if not _messaging(request).lift(profile_id, reason):
            raise ApiError(404, "not_found", f"profile {profile_id} is not held out for {reason}")

    @post(
        "/feedback/{provider:str}",
        summary="Delivery report from a provider (URL carries ?key=...)",
        status_code=200,
        opt={"public": True},
    )
    async def feedback(
        self, request: Request[Any, Any, Any], provider: FromPath[str], key: FromQuery[str] = ""
    ) -> dict[str, Any]:
        messaging = _messaging(request)
        try:
            if signing.verify(messaging.secret, "feedback", key).get("p") != provider:
                raise signing.InvalidToken("key is for another provider")
        except signing.InvalidToken as exc:
            raise ApiError(401, "invalid_feedback_key", f"feedback key: {exc}") from exc
        if "form" in request.headers.get("content-type", ""):
            payload: dict[str, Any] = dict(await request.form())
        else:
            try:
                payload = msgspec.json.decode(await request.body())
            except msgspec.DecodeError as exc:
                raise ApiError(400, "invalid_json", f"feedback body is not JSON: {exc}") from exc
            if not isinstance(payload, dict):
                raise ApiError(400, "invalid_feedback", "feedback body must be an object")
        import asyncio

        return dict(await asyncio.to_thread(_call, messaging.feedback, provider, payload))

    @get("/privacy/export", summary="Everything held about the person holding an identifier", sync_to_thread=True)
    def privacy_export(self, request: Request[Any, Any, Any], identifier: FromQuery[str]) -> dict[str, Any]:
        from accord.messaging.privacy import export_person

        platform: Platform = request.app.state.platform
        data = _call(export_person, platform.state, platform.events, platform.consents, platform.messaging, identifier)
        return dict(msgspec.json.decode(msgspec.json.encode(data, enc_hook=str)))

    @post("/privacy/erase", summary="Erase the person holding an identifier, and keep them erased", status_code=200)
    async def privacy_erase(self, request: Request[Any, Any, Any], data: JSONBody[ErasureIn]) -> dict[str, Any]:
        import asyncio

        from accord.messaging.privacy import erase_person

        platform: Platform = request.app.state.platform
        result = await asyncio.to_thread(
            _call,
            erase_person,
            platform.state,
            platform.events,
            platform.consents,
            platform.messaging,
            data.identifier,
            data.requested_by,
            platform.processor.drain,
        )
        return dict(result)

    @get("/privacy/requests", summary="Audit trail of data-subject requests", sync_to_thread=True)
    def privacy_requests(
        self, request: Request[Any, Any, Any], identifier: FromQuery[str | None] = None
    ) -> list[dict[str, Any]]:
        from accord.consent.requests import requests_for

        platform: Platform = request.app.state.platform
        key = None
        if identifier:
            try:
                key = profiles.parse_identifier(identifier, platform.rules)
            except profiles.InvalidIdentifier as exc:
                raise ApiError(400, "invalid_identifier", str(exc)) from exc
        return requests_for(platform.state, key)

    @get("/inbox/{profile_id:str}", summary="In-app inbox of a profile", sync_to_thread=True)
    def inbox(self, request: Request[Any, Any, Any], profile_id: FromPath[str]) -> list[dict[str, Any]]:
        return list(_call(_messaging(request).inbox, profile_id))

    @post("/inbox/{profile_id:str}/{delivery_id:str}/read", summary="Mark an inbox message read", sync_to_thread=True)
    def inbox_read(
        self, request: Request[Any, Any, Any], profile_id: FromPath[str], delivery_id: FromPath[str]
    ) -> dict[str, Any]:
        return dict(_call(_messaging(request).mark_read, profile_id, delivery_id))


class CallCenterController(Controller):
    """The call-centre task list: call-channel messages to make, and the agents' outcomes (admin token)."""

    path = "/api/v1/call-center"
    tags = ["messaging"]

    @get("/tasks", summary="Call tasks (status sent = still to call; all = every status)", sync_to_thread=True)
    def tasks(
        self, request: Request[Any, Any, Any], status: FromQuery[str] = "sent", limit: FromQuery[int] = 500
    ) -> list[dict[str, Any]]:
        return list(_call(_messaging(request).call_tasks, None if status == "all" else status, limit))

    @post("/tasks/{delivery_id:str}", summary="Record a call's outcome", status_code=200, sync_to_thread=True)
    def record(
        self, request: Request[Any, Any, Any], delivery_id: FromPath[str], data: JSONBody[CallOutcomeIn]
    ) -> dict[str, Any]:
        return dict(_call(_messaging(request).record_call, delivery_id, data.outcome, data.agent, data.note))


class TrackingController(Controller):
    """Public tracking links in messages: open pixel and click redirect (signed tokens)."""

    path = "/t"
    tags = ["tracking"]
    include_in_schema = False

    @get("/o/{token:str}", sync_to_thread=True)
    def opened(self, request: Request[Any, Any, Any], token: FromPath[str]) -> Response[bytes]:
        with contextlib.suppress(MessagingError):  # a mangled pixel URL still gets its pixel
            _messaging(request).track("open", token)
        return Response(PIXEL, media_type="image/gif", headers={"Cache-Control": "no-store"})

    @get("/c/{token:str}/{index:int}", sync_to_thread=True, status_code=302)
    def clicked(self, request: Request[Any, Any, Any], token: FromPath[str], index: FromPath[int]) -> Redirect:
        url = _call(_messaging(request).track, "click", token, index)
        if not url:
            raise ApiError(404, "invalid_token", "this link carries no destination")
        return Redirect(path=url, status_code=302)


class Sending:
    """The outbox sender running in the server process (a thread), stopped with the server."""

    def __init__(self, messaging: Messaging) -> None:
        self.stop = threading.Event()
        self.sender = Sender(messaging)
        self.thread = threading.Thread(
            target=self.sender.run_forever, args=(self.stop,), name="accord-sender", daemon=True
        )

    def start(self) -> Sending:
        self.thread.start()
        return self

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
