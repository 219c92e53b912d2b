"""Sections of the associate screen: each domain registers the panel it fills; absent domains show a placeholder."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from accord.commerce import service as commerce
from accord.loyalty.service import LoyaltyError
from accord.platform import Platform

# (platform, profile_id, store_id) -> the template's context for this customer at this store
PanelLoader = Callable[[Platform, str, str], dict[str, Any]]


@dataclass(frozen=True)
class StorePanel:
    """One section of the associate screen: TITLE (msgid), the DOMAIN that fills it, its template and loader."""

    key: str
    title: str
    domain: str
    order: int
    template: str | None = None
    loader: PanelLoader | None = None

    @property
    def available(self) -> bool:
        return self.template is not None and self.loader is not None


PANELS: dict[str, StorePanel] = {}


def register(panel: StorePanel) -> None:
    """Add or replace a panel (a domain replaces its placeholder when it lands)."""
    PANELS[panel.key] = panel


def ordered() -> list[StorePanel]:
    """Panels in screen order."""
    return sorted(PANELS.values(), key=lambda p: (p.order, p.key))


def _points(platform: Platform, profile_id: str, store_id: str) -> dict[str, Any]:
    try:
        return {"account": platform.loyalty.account(profile_id)}
    except LoyaltyError as exc:
        return {"account": None, "problem": exc.message}


def _offers(platform: Platform, profile_id: str, store_id: str) -> dict[str, Any]:
    return {"offers": platform.offers.active_offers(profile_id, store_id, "store")}


def _pickups(platform: Platform, profile_id: str, store_id: str) -> dict[str, Any]:
    return {"orders": commerce.open_pickup_orders(platform.state, profile_id, store_id)}


register(StorePanel("points", "Points", "loyalty", 10, "partials/panel_points.html", _points))
register(StorePanel("offers", "Offers usable here", "offers", 20, "partials/panel_offers.html", _offers))
register(StorePanel("pickups", "Pickup orders waiting", "commerce", 30, "partials/panel_pickups.html", _pickups))
