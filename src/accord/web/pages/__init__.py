"""The web pages; a domain adds its page by appending its controller to CONTROLLERS (and a nav.NavItem)."""

from __future__ import annotations

from litestar.types import ControllerRouterHandler

from accord.web.pages.analytics import AnalyticsController
from accord.web.pages.commerce import CommerceController
from accord.web.pages.customers import CustomersController
from accord.web.pages.journey_editor import JourneyEditorController
from accord.web.pages.journeys import JourneysController
from accord.web.pages.lift import LiftController
from accord.web.pages.loyalty import LoyaltyController
from accord.web.pages.messages import MessagesController
from accord.web.pages.overview import OverviewController
from accord.web.pages.segments import SegmentsController
from accord.web.pages.session import SessionController
from accord.web.pages.store import StoreController
from accord.web.pages.template_editor import TemplateEditorController
from accord.web.pages.value import ValueController

CONTROLLERS: list[ControllerRouterHandler] = [
    SessionController,
    OverviewController,
    CustomersController,
    SegmentsController,
    JourneysController,
    JourneyEditorController,
    MessagesController,
    TemplateEditorController,
    AnalyticsController,
    CommerceController,
    StoreController,
    LiftController,
    ValueController,
    LoyaltyController,
]
