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


def test_story_10_the_appointment_reminder_goes_the_day_before_at_a_decent_hour_in_the_stores_time(
    sqlite_platform: Platform,
) -> None:
    from datetime import UTC, datetime, timedelta

    from accord.journeys.engine import JourneyEvent
    from tests.journeys.conftest import Clock, RecordingSender

    platform = sqlite_platform
    clock, sender = Clock(datetime(2026, 6, 1, 8, 0, tzinfo=UTC)), RecordingSender()
    platform.journeys.clock, platform.journeys.sender = clock, sender
    journeys.apply(platform.state, journeys.library()["appointment-reminder"], activate=True)
    # booked (as commerce emits it) for 10:00 on 4 June at a Shanghai store, which opens at 10:00
    booked = JourneyEvent(
        "P1",
        "Appointment Booked",
        clock.now,
        "store",
        {"starts_at": "2026-06-04T02:00:00+00:00", "timezone": "Asia/Shanghai", "store_id": "st-sha-01"},
    )
    with platform.state.begin() as conn:
        platform.journeys.handle_events(conn, [booked])
    platform.journeys.run_until_idle()
    for hours in range(0, 96):
        clock.now = datetime(2026, 6, 1, 0, 0, tzinfo=UTC) + timedelta(hours=hours)
        platform.journeys.run_until_idle()
        if sender.sent:
            break
    assert [r.template for r in sender.sent] == ["appointment-reminder"]
    # the day before, at 09:30 Shanghai time (01:30 UTC on 3 June), not at night and not on the day itself
    assert clock.now == datetime(2026, 6, 3, 2, 0, tzinfo=UTC)  # the first hourly tick after 01:30 UTC
    assert sender.sent[0].purpose == "transactional"


def test_story_14_back_in_stock_sends_one_message_on_the_best_channel(sqlite_platform: Platform) -> None:
    from datetime import UTC, datetime

    from accord.journeys.engine import JourneyEvent
    from tests.journeys.conftest import Clock, RecordingSender

    platform = sqlite_platform
    clock, sender = Clock(datetime(2026, 6, 1, 8, 0, tzinfo=UTC)), RecordingSender()
    platform.journeys.clock, platform.journeys.sender = clock, sender
    journeys.apply(platform.state, journeys.library()["back-in-stock"], activate=True)

    def back(at: datetime, store: str) -> JourneyEvent:  # as commerce emits it, once per waiting subscription
        return JourneyEvent("P1", "Back In Stock", at, "store", {"sku": "SKU-1", "store_id": store, "available": 2})

    with platform.state.begin() as conn:
        platform.journeys.handle_events(conn, [back(clock.now, "st-waw-01")])
    platform.journeys.run_until_idle()
    clock.advance(hours=1)  # the web has it again too: still one message that day
    with platform.state.begin() as conn:
        platform.journeys.handle_events(conn, [back(clock.now, "web")])
    platform.journeys.run_until_idle()
    assert [(r.template, r.channels) for r in sender.sent] == [("back-in-stock", ["best"])]
    assert sender.sent[0].properties["store_id"] == "st-waw-01"
