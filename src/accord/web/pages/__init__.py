"""The web pages; a domain adds its page by appending its controller to CONTROLLERS (and a nav.NavItem)."""

from __future__ import annotations

from litestar.types import ControllerRouterHandler

from accord.web.pages.customers import CustomersController
from accord.web.pages.journeys import JourneysController
from accord.web.pages.overview import OverviewController
from accord.web.pages.session import SessionController
from accord.web.pages.store import StoreController

CONTROLLERS: list[ControllerRouterHandler] = [
    SessionController,
    OverviewController,
    CustomersController,
    JourneysController,
    StoreController,
]
