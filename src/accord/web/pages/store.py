"""The associate screen of one store: look a customer up by loyalty card or phone and see what matters here."""

from __future__ import annotations

import asyncio
import re
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery

from accord.offers.service import CouponRequest, OfferError
from accord.platform import Platform
from accord.profiles import service as profiles
from accord.storage import new_id
from accord.users.roles import Permission, allows
from accord.web import metrics, store_panels
from accord.web.pages.customers import display_name
from accord.web.render import Formats, gettext_for, locale_of, render, session_of

_PREFIXED = re.compile(r"^\s*(loyalty_card|card|phone)\s*:(.+)$", re.IGNORECASE)


def lookup_candidates(query: str) -> list[str]:
    """A scanned or typed loyalty card number or phone number (associates search by nothing else)."""
    text = query.strip()
    if not text:
        return []
    if prefixed := _PREFIXED.match(text):
        return [f"{prefixed.group(1)}:{prefixed.group(2)}"]
    return [f"loyalty_card:{text}", f"phone:{text}"]


def lookup(platform: Platform, store_id: str, query: str) -> dict[str, Any] | None:
    """The customer holding the card or phone, with what this store's screen shows; None when nobody matches."""
    for candidate in lookup_candidates(query):
        try:
            pid = profiles.resolve(platform.state, platform.rules, candidate)
        except profiles.InvalidIdentifier:
            continue
        if pid is None:
            continue
        view = profiles.profile_view(platform.state, platform.events, pid)
        if view is None:
            continue
        panels = []
        for panel in store_panels.ordered():
            context = panel.loader(platform, pid, store_id) if panel.loader is not None else {}
            panels.append({"panel": panel, "context": context})
        return {
            "matched": candidate.split(":", 1)[0],
            "name": display_name(view),
            "view": view,
            "visits": metrics.store_visits(platform.events, pid, store_id),
            "panels": panels,
        }
    return None


class RedeemForm(msgspec.Struct):
    """Redeem CODE for PROFILE_ID at this store; the key makes a repeated submit the same redemption."""

    code: str = ""
    profile_id: str = ""
    q: str = ""
    idempotency_key: str = ""
    csrf_token: str = ""


def _screen_context(request: Request[Any, Any, Any], store_id: str, q: str, result: Any) -> dict[str, Any]:
    session = session_of(request)
    return {
        "store_id": store_id,
        "q": q,
        "result": result,
        "searched": bool(q.strip()),
        "can_redeem": session is not None and allows(session.user.role, Permission.serve_customer),
        "new_key": new_id,
        "notice": None,
        "problem": None,
    }


class StoreController(Controller):
    """/store/{store_id}: associates of that store, and marketers, analysts and admins."""

    path = "/store/{store_id:str}"
    include_in_schema = False
    opt = {"store_screen": True}

    @get("/")
    async def screen(
        self, request: Request[Any, Any, Any], store_id: FromPath[str], q: FromQuery[str] = ""
    ) -> Response[str]:
        platform: Platform = request.app.state.platform
        result = await asyncio.to_thread(lookup, platform, store_id, q) if q.strip() else None
        return render(request, "store.html", **_screen_context(request, store_id, q, result))

    @get("/lookup")
    async def lookup_partial(
        self, request: Request[Any, Any, Any], store_id: FromPath[str], q: FromQuery[str] = ""
    ) -> Response[str]:
        platform: Platform = request.app.state.platform
        result = await asyncio.to_thread(lookup, platform, store_id, q) if q.strip() else None
        return render(request, "partials/store_result.html", **_screen_context(request, store_id, q, result))

    @post("/redeem", opt={"write_permission": Permission.serve_customer}, status_code=200)
    async def redeem(
        self,
        request: Request[Any, Any, Any],
        store_id: FromPath[str],
        data: Annotated[RedeemForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Response[str]:
        platform: Platform = request.app.state.platform
        _ = gettext_for(request)
        status = 200
        notice = problem = None
        try:
            coupon = CouponRequest(code=data.code, channel="store", store_id=store_id, profile_id=data.profile_id)
            op = platform.offers.redeem_op(coupon, data.idempotency_key)
            done = await asyncio.wrap_future(platform.committer.submit(op))
            notice = _("Coupon {code} redeemed.").format(code=done["code"])
            if done.get("discount_minor") is not None:
                notice += " " + _("Discount: {amount}.").format(
                    amount=Formats(locale_of(request)).money(done["discount_minor"], done.get("currency"))
                )
        except OfferError as exc:
            problem = _("Coupon {code} not redeemed: {reason}").format(code=data.code, reason=exc.message)
            status = exc.status
        result = await asyncio.to_thread(lookup, platform, store_id, data.q) if data.q.strip() else None
        context = _screen_context(request, store_id, data.q, result) | {"notice": notice, "problem": problem}
        if request.headers.get("hx-request") == "true":  # htmx swaps 2xx answers only: the message says what happened
            return render(request, "partials/store_result.html", **context)
        return render(request, "store.html", status_code=status, **context)
