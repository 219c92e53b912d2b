"""Sections of the associate screen: each domain registers the panel it fills; absent domains show a placeholder."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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


# Placeholders until the loyalty, offers and commerce domains land: shown as "not yet available", never faked.
register(StorePanel("points", "Points", "loyalty", 10))
register(StorePanel("offers", "Offers usable here", "offers", 20))
register(StorePanel("pickups", "Pickup orders waiting", "commerce", 30))
