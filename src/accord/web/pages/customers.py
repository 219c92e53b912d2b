"""Customers: search by any identifier, the profile with its timeline across channels, merges and unmerge."""

from __future__ import annotations

import asyncio
import re
from typing import Annotated, Any
from urllib.parse import urlencode

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotFoundException
from litestar.params import Body, FromPath, FromQuery
from litestar.response import Redirect

from accord.commerce import service as commerce
from accord.identity.graph import IdentityRuleError
from accord.platform import Platform
from accord.profiles import service as profiles
from accord.segments import service as segments
from accord.users.roles import Permission, allows
from accord.web.render import gettext_for, render, session_of

TIMELINE_PAGE = 50
_TYPED = re.compile(r"^\s*([A-Za-z][A-Za-z0-9 _-]{0,40}):(.+)$")
_NUMBERISH = re.compile(r"^[+\d][\d\s()./-]*$")


class UnmergeForm(msgspec.Struct):
    """Which identifier to detach from the profile."""

    identifier: str = ""
    reason: str = ""
    csrf_token: str = ""


def candidate_identifiers(query: str) -> list[str]:
    """What a search box entry may mean: TYPE:VALUE as written, an email, or a card / phone / customer number."""
    text = query.strip()
    if not text:
        return []
    if (typed := _TYPED.match(text)) and not text.lower().startswith(("http:", "https:")):
        return [f"{typed.group(1)}:{typed.group(2)}"]
    if "@" in text:
        return [f"email:{text}"]
    if _NUMBERISH.match(text):
        return [f"loyalty_card:{text}", f"phone:{text}", f"customer_id:{text}", f"user_id:{text}"]
    return [f"customer_id:{text}", f"user_id:{text}", f"loyalty_card:{text}"]


def search(platform: Platform, query: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Profiles matching the query (with the identifier that matched), and the reasons of refused candidates."""
    found: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    candidates = candidate_identifiers(query)
    for candidate in candidates:
        try:
            pid = profiles.resolve(platform.state, platform.rules, candidate)
        except profiles.InvalidIdentifier as exc:
            if len(candidates) == 1:
                problems.append(str(exc))
            continue
        if pid and pid not in found:
            view = profiles.profile_view(platform.state, platform.events, pid)
            if view is not None:
                view["matched"] = candidate
                found[pid] = view
    return list(found.values()), problems


def display_name(view: dict[str, Any]) -> str:
    """The customer's name from their traits, else their email, else the profile id."""
    traits = view.get("traits", {})

    def value(key: str) -> str:
        item = traits.get(key)
        return str(item["value"]) if item and item.get("value") not in (None, "") else ""

    name = value("name") or " ".join(filter(None, (value("first_name") or value("firstName"),
                                                    value("last_name") or value("lastName"))))  # fmt: skip
    if name:
        return name
    for ident in view.get("identifiers", []):
        if ident["type"] == "email":
            return str(ident["value"])
    return str(view["id"])


def event_label(event: dict[str, Any]) -> str:
    """What happened, in a few words: the track event, the page/screen name, or the call type."""
    return str(event.get("event") or event.get("name") or event.get("type") or "")


def event_details(event: dict[str, Any]) -> list[tuple[str, str]]:
    """A few telling properties of the event (order id, product, campaign, url)."""
    raw = event.get("raw") or {}
    props = raw.get("properties") or {}
    details: list[tuple[str, str]] = []
    for key in ("order_id", "product_id", "sku", "name", "url", "subject", "template", "coupon"):
        if props.get(key) not in (None, "") and len(details) < 3:
            details.append((key, str(props[key])[:80]))
    if event.get("campaign_name"):
        details.append(("campaign", str(event["campaign_name"])))
    if event.get("store_id"):
        details.append(("store", str(event["store_id"])))
    return details


def domain_sections(platform: Platform, view: dict[str, Any]) -> dict[str, Any]:
    """What the other domains know of the customer: consent, segments, points, offers, orders (each read alone)."""
    pid = view["id"]
    keys = [f"{i['type']}:{i['value']}" for i in view.get("identifiers", [])]
    out: dict[str, Any] = {}
    readers: dict[str, Any] = {
        "consent": lambda: platform.consents.show(keys[0]) if keys else None,
        "segments": lambda: segments.segments_of(platform.state, pid),
        "points": lambda: platform.loyalty.account(pid),
        "offers": lambda: platform.offers.active_offers(pid, None, "web"),
        "orders": lambda: commerce.customer_orders(platform.state, keys[0])[:10] if keys else [],
    }
    for name, read in readers.items():
        try:
            out[name] = read()
        except Exception as exc:  # one domain's failure must not hide the profile; the section says why
            out[name] = None
            out[f"{name}_problem"] = f"{type(exc).__name__}: {exc}"
    return out


def _timeline(platform: Platform, pid: str, cursor: str | None, channel: str | None) -> dict[str, Any] | None:
    try:
        return profiles.timeline(platform.state, platform.events, pid, TIMELINE_PAGE, cursor, channel, True)
    except ValueError as exc:
        raise NotFoundException(detail=str(exc)) from exc


class CustomersController(Controller):
    """/customers (marketers, analysts, admins; unmerge needs the change permission)."""

    path = "/customers"
    include_in_schema = False
    opt = {"permission": Permission.read_customers}

    @get("/")
    async def search_page(self, request: Request[Any, Any, Any], q: FromQuery[str] = "") -> Response[str]:
        platform: Platform = request.app.state.platform
        results, problems = await asyncio.to_thread(search, platform, q) if q.strip() else ([], [])
        return render(
            request,
            "customers.html",
            q=q,
            results=results,
            problems=problems,
            display_name=display_name,
        )

    @get("/{profile_id:str}")
    async def profile_page(
        self,
        request: Request[Any, Any, Any],
        profile_id: FromPath[str],
        cursor: FromQuery[str | None] = None,
        channel: FromQuery[str | None] = None,
        unmerged: FromQuery[str | None] = None,
        moved: FromQuery[str | None] = None,
    ) -> Response[Any]:
        platform: Platform = request.app.state.platform

        # the profile summary and the timeline page scan the event store independently: run them side by side
        view, merges, timeline = await asyncio.gather(
            asyncio.to_thread(profiles.profile_view, platform.state, platform.events, profile_id),
            asyncio.to_thread(profiles.merge_history, platform.state, profile_id),
            asyncio.to_thread(_timeline, platform, profile_id, cursor, channel or None),
        )
        _ = gettext_for(request)
        if view is None:
            raise NotFoundException(detail=_("No customer profile {id}.").format(id=profile_id))
        if view["id"] != profile_id:  # merged into another profile since: follow it
            return Redirect(f"/customers/{view['id']}", status_code=303)
        session = session_of(request)
        assert session is not None and merges is not None and timeline is not None
        sections = await asyncio.to_thread(domain_sections, platform, view)
        return render(
            request,
            "customer.html",
            view=view,
            merges=merges,
            timeline=timeline,
            channel=channel or "",
            name=display_name(view),
            event_label=event_label,
            event_details=event_details,
            can_change=allows(session.user.role, Permission.change),
            unmerged=unmerged,
            moved=moved,
            more_url=_more_url(profile_id, timeline.get("next_cursor"), channel),
            sections=sections,
        )

    @get("/{profile_id:str}/timeline")
    async def timeline_rows(
        self,
        request: Request[Any, Any, Any],
        profile_id: FromPath[str],
        cursor: FromQuery[str | None] = None,
        channel: FromQuery[str | None] = None,
    ) -> Response[str]:
        platform: Platform = request.app.state.platform
        timeline = await asyncio.to_thread(_timeline, platform, profile_id, cursor, channel or None)
        if timeline is None:
            raise NotFoundException(detail=f"no profile {profile_id}")
        return render(
            request,
            "partials/timeline_rows.html",
            timeline=timeline,
            event_label=event_label,
            event_details=event_details,
            more_url=_more_url(timeline["profile_id"], timeline.get("next_cursor"), channel),
        )

    @post("/{profile_id:str}/unmerge", status_code=303)
    async def unmerge(
        self,
        request: Request[Any, Any, Any],
        profile_id: FromPath[str],
        data: Annotated[UnmergeForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Response[Any]:
        platform: Platform = request.app.state.platform
        _ = gettext_for(request)
        session = session_of(request)
        assert session is not None
        reason = data.reason.strip() or f"unmerged in the web app by {session.user.email}"

        def run() -> dict[str, Any]:
            result = profiles.unmerge(platform.graph, profile_id, data.identifier, reason)
            platform.processor.sync_identity()
            return result

        try:
            result = await asyncio.to_thread(run)
        except (profiles.InvalidIdentifier, IdentityRuleError) as exc:
            view = await asyncio.to_thread(profiles.profile_view, platform.state, platform.events, profile_id)
            if view is None:
                raise NotFoundException(detail=f"no profile {profile_id}") from exc
            return render(request, "error.html", status_code=409, title=_("Unmerge refused"), detail=str(exc))
        query = urlencode({"unmerged": result["new_profile_id"], "moved": result["identifier"]})
        return Redirect(f"/customers/{result['profile_id']}?{query}", status_code=303)


def _more_url(profile_id: str, cursor: str | None, channel: str | None) -> str | None:
    if not cursor:
        return None
    params = {"cursor": cursor, **({"channel": channel} if channel else {})}
    return f"/customers/{profile_id}/timeline?{urlencode(params)}"
