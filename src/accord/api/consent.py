"""HTTP API of consent (admin) and the public pages behind signed links: confirm, one-click unsubscribe,
preference centre, inbound SMS keywords."""

from __future__ import annotations

from datetime import datetime
from html import escape
from typing import Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath, FromQuery, JSONBody

from accord.api.admin import ApiError
from accord.consent import signing
from accord.consent.service import ConsentError, Consents
from accord.platform import Platform


def _consents(request: Request[Any, Any, Any]) -> Consents:
    platform: Platform = request.app.state.platform
    return platform.consents


def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except ConsentError as exc:
        raise ApiError(exc.status, exc.code, exc.message) from exc


def _page(title: str, body: str, status: int = 200) -> Response[str]:
    html = (
        "<!doctype html><html><head><meta charset='utf-8'><meta name='viewport' content='width=device-width'>"
        f"<title>{escape(title)}</title></head><body style='font-family:sans-serif;max-width:40em;margin:2em auto'>"
        f"<h1>{escape(title)}</h1>{body}</body></html>"
    )
    return Response(html, status_code=status, media_type="text/html")


class ConsentIn(msgspec.Struct):
    """One consent change."""

    identifier: str
    purpose: str
    channel: str
    status: str
    source: str
    legal_basis: str | None = None
    expires_at: datetime | None = None


class DoubleOptInIn(msgspec.Struct):
    """Start a double opt-in."""

    identifier: str
    purpose: str
    channel: str
    source: str


class ConsentController(Controller):
    """Consent endpoints under /api/v1 (admin token, except inbound SMS which carries its own key)."""

    path = "/api/v1"
    tags = ["consent"]

    @post("/consents", summary="Set a consent (purpose x channel)", status_code=200, sync_to_thread=True)
    def set_consent(self, request: Request[Any, Any, Any], data: JSONBody[ConsentIn]) -> dict[str, Any]:
        record = _call(
            _consents(request).set,
            data.identifier,
            data.purpose,
            data.channel,
            data.status,
            data.source,
            data.legal_basis,
            data.expires_at,
        )
        return dict(record.as_dict())

    @get("/consents", summary="Consents and reachability of the person holding an identifier", sync_to_thread=True)
    def show(self, request: Request[Any, Any, Any], identifier: FromQuery[str]) -> dict[str, Any]:
        return dict(_call(_consents(request).show, identifier))

    @post("/consents/double-opt-in", summary="Start a double opt-in (link or SMS keyword)", sync_to_thread=True)
    def double_opt_in(self, request: Request[Any, Any, Any], data: JSONBody[DoubleOptInIn]) -> dict[str, Any]:
        consents = _consents(request)
        return dict(_call(consents.request_double_opt_in, data.identifier, data.purpose, data.channel, data.source))

    @post("/sms/inbound", summary="Inbound SMS (STOP/START/YES); URL carries ?key=...", opt={"public": True})
    async def inbound_sms(self, request: Request[Any, Any, Any], key: FromQuery[str] = "") -> dict[str, Any]:
        import asyncio

        consents = _consents(request)
        try:
            signing.verify(consents.secret, "inbound", key)
        except signing.InvalidToken as exc:
            raise ApiError(401, "invalid_inbound_key", f"inbound key: {exc}") from exc
        if "form" in request.headers.get("content-type", ""):
            payload: dict[str, Any] = dict(await request.form())
        else:
            try:
                payload = msgspec.json.decode(await request.body())
            except msgspec.DecodeError as exc:
                raise ApiError(400, "invalid_json", str(exc)) from exc
        phone = payload.get("From") or payload.get("from")
        text = payload.get("Body") or payload.get("text")
        if not isinstance(phone, str) or not isinstance(text, str):
            raise ApiError(400, "invalid_inbound", "inbound SMS needs From/from and Body/text")
        return dict(await asyncio.to_thread(_call, consents.inbound_sms, phone, text))


def inbound_key(secret: bytes) -> str:
    """The key of the inbound-SMS webhook URL."""
    return signing.sign(secret, "inbound", {})


class ConsentPages(Controller):
    """Public pages behind signed links (no admin token; the link's signature is the authority)."""

    path = "/consent"
    tags = ["consent pages"]
    include_in_schema = False

    @get("/confirm/{token:str}", sync_to_thread=True)
    def confirm(self, request: Request[Any, Any, Any], token: FromPath[str]) -> Response[str]:
        try:
            record = _consents(request).confirm(token)
        except ConsentError as exc:
            return _page("This link does not work", f"<p>{escape(exc.message)}</p>", 404)
        return _page(
            "Thank you", f"<p>Your {escape(record.purpose)} subscription by {escape(record.channel)} is confirmed.</p>"
        )

    @post("/unsubscribe/{token:str}", sync_to_thread=True, status_code=200)
    def one_click(self, request: Request[Any, Any, Any], token: FromPath[str]) -> Response[str]:
        """RFC 8058: the mail client POSTs List-Unsubscribe=One-Click; the page form posts here too."""
        try:
            record = _consents(request).unsubscribe(token)
        except ConsentError as exc:
            return _page("This link does not work", f"<p>{escape(exc.message)}</p>", 404)
        return _page(
            "Unsubscribed", f"<p>You will get no more {escape(record.purpose)} by {escape(record.channel)}.</p>"
        )

    @get("/unsubscribe/{token:str}", sync_to_thread=True)
    def unsubscribe_page(self, request: Request[Any, Any, Any], token: FromPath[str]) -> Response[str]:
        """A GET never unsubscribes (link scanners follow links): it shows a one-button form."""
        return _page(
            "Unsubscribe",
            f"<form method='post'><button type='submit'>Unsubscribe</button></form>"
            f"<p><a href='../preferences/{escape(token)}'>Manage all preferences</a></p>",
        )

    @get("/preferences/{token:str}", sync_to_thread=True)
    def preferences(self, request: Request[Any, Any, Any], token: FromPath[str]) -> Response[str]:
        try:
            prefs = _consents(request).preferences(token)
        except ConsentError as exc:
            return _page("This link does not work", f"<p>{escape(exc.message)}</p>", 404)
        return _page("Your preferences", _form(prefs))

    @post("/preferences/{token:str}")
    async def update_preferences(self, request: Request[Any, Any, Any], token: FromPath[str]) -> Response[str]:
        import asyncio

        form = await request.form()
        consents = _consents(request)
        try:
            prefs = await asyncio.to_thread(consents.preferences, token)
            wanted = {p["purpose"]: form.get(p["purpose"]) == "on" for p in prefs["purposes"]}
            prefs = await asyncio.to_thread(consents.update_preferences, token, wanted)
        except ConsentError as exc:
            return _page("This link does not work", f"<p>{escape(exc.message)}</p>", 404)
        return _page("Saved", "<p>Your preferences are saved.</p>" + _form(prefs))


def _form(prefs: dict[str, Any]) -> str:
    rows = "".join(
        f"<p><label><input type='checkbox' name='{escape(p['purpose'])}'"
        f"{' checked' if p['status'] == 'opted_in' else ''}> {escape(p['purpose'])}</label></p>"
        for p in prefs["purposes"]
    )
    return f"<p>Messages by {escape(prefs['channel'])}:</p><form method='post'>{rows}<button>Save</button></form>"
