"""Loyalty: the program (tiers, earn rules, expiry), members per tier, the rewards catalogue, a customer's ledger."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any
from urllib.parse import urlencode

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotFoundException
from litestar.params import Body, FromPath, FromQuery
from litestar.response import Redirect

from accord.loyalty.service import LoyaltyError
from accord.platform import Platform
from accord.users.roles import Permission, allows
from accord.web import nav
from accord.web.render import gettext_for, render, session_of

LEDGER_PAGE = 50

nav.register(nav.NavItem("loyalty", "/loyalty", "Loyalty", Permission.read_customers, 75))


class RewardForm(msgspec.Struct):
    """A reward for the catalogue: its name, its cost in points and the stock (blank: unlimited)."""

    name: str = ""
    cost_points: str = ""
    stock: str = ""
    csrf_token: str = ""


def program_page_data(platform: Platform) -> dict[str, Any]:
    """The program's rules and tiers with their members, and the active rewards."""
    loyalty = platform.loyalty
    program = loyalty.program()
    members = loyalty.members_by_tier()
    thresholds = dict(program.tiers)
    tiers = [
        {**row, "threshold": thresholds.get(row["tier"]), "multiplier": program.tier_multipliers.get(row["tier"], 1.0)}
        for row in members["tiers"]
    ]
    return {
        "configured": loyalty.enabled(),
        "program": program,
        "rates": sorted(program.points_per_unit.items(), key=lambda kv: (kv[0] == "default", kv[0])),
        "tiers": tiers,
        "accounts": members["accounts"],
        "outstanding": members["balance"],
        "rewards": loyalty.rewards(),
    }


def ledger_page_data(platform: Platform, profile_id: str, before: str | None) -> dict[str, Any]:
    """A customer's account (balance, tier, next tier and expiry) and a page of ledger entries, newest first."""
    account = platform.loyalty.account(profile_id)
    entries = platform.loyalty.ledger(profile_id, LEDGER_PAGE + 1, before or None)
    return {
        "account": account,
        "entries": entries[:LEDGER_PAGE],
        "older": entries[LEDGER_PAGE - 1]["id"] if len(entries) > LEDGER_PAGE else None,
    }


def _whole(text: str, field: str, required: bool) -> int | None:
    text = text.strip()
    if not text:
        if required:
            raise LoyaltyError(400, "invalid_reward", f"{field} is required")
        return None
    try:
        return int(text)
    except ValueError as exc:
        raise LoyaltyError(400, "invalid_reward", f"{field} must be a whole number, not {text!r}") from exc


class LoyaltyController(Controller):
    """/loyalty (marketers, analysts, admins); adding a reward needs the right to change things."""

    path = "/loyalty"
    include_in_schema = False
    opt = {"permission": Permission.read_customers}

    async def _program(self, request: Request[Any, Any, Any], status_code: int = 200, **extra: Any) -> Response[str]:
        platform: Platform = request.app.state.platform
        data = await asyncio.to_thread(program_page_data, platform)
        session = session_of(request)
        can_change = session is not None and allows(session.user.role, Permission.change)
        return render(request, "loyalty.html", status_code=status_code, can_change=can_change, **data, **extra)

    @get("/")
    async def program_page(self, request: Request[Any, Any, Any], added: FromQuery[str] = "") -> Response[str]:
        return await self._program(request, added=added, problem=None, form=None)

    @post("/rewards")
    async def add_reward(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[RewardForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Response[Any]:
        platform: Platform = request.app.state.platform
        _ = gettext_for(request)
        try:
            cost = _whole(data.cost_points, _("cost in points"), True)
            stock = _whole(data.stock, _("stock"), False)
            await asyncio.to_thread(platform.loyalty.add_reward, data.name, cost or 0, stock)
        except LoyaltyError as exc:
            return await self._program(request, status_code=422, added="", problem=exc.message, form=data)
        return Redirect(path=f"/loyalty?{urlencode({'added': data.name.strip()})}", status_code=303)

    @get("/customers/{profile_id:str}")
    async def ledger_page(
        self, request: Request[Any, Any, Any], profile_id: FromPath[str], before: FromQuery[str] = ""
    ) -> Response[str]:
        platform: Platform = request.app.state.platform
        try:
            data = await asyncio.to_thread(ledger_page_data, platform, profile_id, before.strip())
        except LoyaltyError as exc:  # unknown, or merged into another profile (the message names it)
            raise NotFoundException(detail=exc.message) from exc
        return render(request, "loyalty_ledger.html", profile_id=profile_id, **data)
