"""The associate screen of one store: look a customer up by loyalty card or phone and see what matters here."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from litestar import Controller, Request, Response, get

from accord.platform import Platform
from accord.profiles import service as profiles
from accord.web import metrics, store_panels
from accord.web.pages.customers import display_name
from accord.web.render import gettext_for, render

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


class StoreController(Controller):
    """/store/{store_id}: associates of that store, and marketers, analysts and admins."""

    path = "/store/{store_id:str}"
    include_in_schema = False
    opt = {"store_screen": True}

    @get("/")
    async def screen(self, request: Request[Any, Any, Any], store_id: str, q: str = "") -> Response[str]:
        platform: Platform = request.app.state.platform
        result = await asyncio.to_thread(lookup, platform, store_id, q) if q.strip() else None
        return render(request, "store.html", store_id=store_id, q=q, result=result, searched=bool(q.strip()))

    @get("/lookup")
    async def lookup_partial(self, request: Request[Any, Any, Any], store_id: str, q: str = "") -> Response[str]:
        platform: Platform = request.app.state.platform
        _ = gettext_for(request)
        result = await asyncio.to_thread(lookup, platform, store_id, q) if q.strip() else None
        return render(
            request, "partials/store_result.html", store_id=store_id, q=q, result=result, searched=bool(q.strip())
        )
