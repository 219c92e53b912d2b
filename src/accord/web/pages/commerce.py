"""Commerce: stores on a map and in a table, offers; per store its opening hours, pickup orders waiting and stock."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Controller, Request, Response, get
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery

from accord.commerce import service as commerce
from accord.offers import service as offers
from accord.platform import Platform
from accord.users.roles import Permission
from accord.web import insight_charts
from accord.web.render import gettext_for, render

STOCK_ROWS = 25


def stores(platform: Platform) -> list[dict[str, Any]]:
    """Every location with its facts."""
    return [loc.as_dict() for loc in commerce.locations.list_locations(platform.state)]


def store_page_data(platform: Platform, store_id: str, sku: str) -> dict[str, Any]:
    """One store: facts, open pickup orders, stock of the first SKUs (or of SKU) and where else SKU is available."""
    facts = commerce.store(platform.state, store_id)
    skus = [sku] if sku else commerce.catalog.skus(platform.state, STOCK_ROWS)
    stock = [commerce.inventory.stock_level(platform.state, store_id, s) for s in skus]
    nearby: list[dict[str, Any]] = []
    if sku and facts.get("lat") is not None and facts.get("lon") is not None:
        nearby = commerce.availability(platform.state, sku, facts["lat"], facts["lon"], limit=5)
    return {
        "store": facts,
        "pickups": commerce.orders.store_orders(platform.state, store_id),
        "stock": stock,
        "nearby": nearby,
    }


class CommerceController(Controller):
    """/commerce (marketers, analysts, admins)."""

    path = "/commerce"
    include_in_schema = False
    opt = {"permission": Permission.read_customers}

    @get("/")
    async def list_page(self, request: Request[Any, Any, Any]) -> Response[str]:
        platform: Platform = request.app.state.platform
        rows = await asyncio.to_thread(stores, platform)
        offer_rows = await asyncio.to_thread(offers.list_offers, platform.state)
        mapped = [s for s in rows if s.get("lat") is not None and s.get("lon") is not None]
        store_map = insight_charts.store_map(mapped, gettext_for(request)("Stores")) if mapped else None
        return render(request, "commerce.html", stores=rows, offers=offer_rows, store_map=store_map, mapped=len(mapped))

    @get("/stores/{store_id:str}")
    async def store_page(
        self, request: Request[Any, Any, Any], store_id: FromPath[str], sku: FromQuery[str] = ""
    ) -> Response[str]:
        platform: Platform = request.app.state.platform
        try:
            data = await asyncio.to_thread(store_page_data, platform, store_id, sku.strip())
        except commerce.NotFound as exc:
            raise NotFoundException(detail=exc.message) from exc
        except commerce.CommerceError as exc:
            _ = gettext_for(request)
            return render(request, "error.html", status_code=exc.status, title=_("Bad request"), detail=exc.message)
        return render(request, "commerce_store.html", sku=sku.strip(), **data)
