"""The ready-made journeys parse, cover the retailer's classics, and apply."""

from __future__ import annotations

from accord.journeys import service as journeys
from accord.journeys.definition import load_journey
from accord.platform import Platform


def test_every_ready_made_journey_is_valid_and_they_cover_the_classics() -> None:
    parsed = {name: load_journey(text) for name, text in journeys.library().items()}
    assert {j.name for j in parsed.values()} >= {
        "abandoned-cart",
        "back-in-stock",
        "welcome-series",
        "post-purchase-cross-sell",
        "win-back",
        "seasonal-reminder",
        "pickup-ready",
        "appointment-reminder",
    }
    cart = next(j for j in parsed.values() if j.name == "abandoned-cart")
    assert [m.event for m in cart.exit_events] == ["Order Completed"]  # a purchase in any channel ends it


def test_the_library_applies_and_starts(sqlite_platform: Platform) -> None:
    applied = journeys.apply_library(sqlite_platform.state)
    assert all(j["status"] == "active" and j["version"] == 1 for j in applied)
    again = journeys.apply_library(sqlite_platform.state)
    assert not any(j["changed"] for j in again)
