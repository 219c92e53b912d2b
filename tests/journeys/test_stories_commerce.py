"""Stories 10 and 14 end to end: commerce's own write path emits the events, the processor loads them, the
ready-made journeys run on an injected clock, and messaging's policy puts the message in the outbox."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from accord.commerce import appointments, catalog, inventory, locations
from accord.commerce.errors import CommerceError
from accord.journeys import service as journeys
from accord.messaging import tables as mt
from accord.platform import Platform
from tests.journeys.conftest import Clock
from tests.messaging.helpers import person

SHANGHAI = ZoneInfo("Asia/Shanghai")
SHOP_HOURS = {d: ["10:00", "22:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
STORES = [
    {
        "id": "sha-jingan",
        "name": "Shanghai Jing'an",
        "lat": 31.2286,
        "lon": 121.4484,
        "timezone": "Asia/Shanghai",
        "opening_hours": SHOP_HOURS,
        "pickup": True,
        "geofence_m": 150,
        "appointment_capacity": 2,
        "currency": "CNY",
    },
    {
        "id": "waw-mokotow",
        "name": "Warszawa Mokotów",
        "lat": 52.1806,
        "lon": 21.0027,
        "timezone": "Europe/Warsaw",
        "opening_hours": {d: ["09:00", "21:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
        "pickup": True,
        "geofence_m": 200,
        "currency": "PLN",
    },
]
TEMPLATES = [
    {
        "name": "appointment-reminder",
        "purpose": "order_updates",
        "locales": {
            "en": {
                "sms": {"text": "See you tomorrow at {{ store_id }}"},
                "email": {"subject": "Your appointment", "text": "See you tomorrow"},
            }
        },
    },
    {
        "name": "back-in-stock",
        "purpose": "order_updates",
        "locales": {
            "en": {
                "email": {"subject": "{{ sku }} is back", "text": "It is back at {{ store_id }}"},
                "sms": {"text": "{{ sku }} is back"},
            }
        },
    },
]


def deliveries(platform: Platform, template: str) -> list[sa.Row]:
    with platform.state.connect() as conn:
        return list(conn.execute(sa.select(mt.deliveries).where(mt.deliveries.c.template == template)))


@pytest.fixture
def shop(platform: Platform) -> Clock:
    """Stores, the two templates, the two ready-made journeys; a journeys clock at the real present."""
    locations.upsert_locations(platform.state, STORES)
    for template in TEMPLATES:
        platform.messaging.save_template(template)
    for name in ("appointment-reminder", "back-in-stock"):
        journeys.apply(platform.state, journeys.library()[name], activate=True)
    clock = Clock(datetime.now(UTC).replace(microsecond=0))
    platform.journeys.clock = clock
    return clock


def test_story_10_the_reminder_comes_the_day_before_in_store_hours_and_never_asks_for_a_time_it_is_shut(
    platform: Platform, shop: Clock
) -> None:
    amy = person(platform, "amy", first_name="Amy", phone="+48601200300", locale="en")
    day = (datetime.now(SHANGHAI) + timedelta(days=3)).date()
    open_at = datetime(day.year, day.month, day.day, 10, 0, tzinfo=SHANGHAI)
    with pytest.raises(CommerceError):  # 09:00 is before the store opens: commerce will not book it
        appointments.book(
            platform.state, platform.journal, "sha-jingan", open_at - timedelta(hours=1), "fitting", "user_id:amy"
        )
    first = appointments.slots(platform.state, "sha-jingan", day)[0]
    assert datetime.fromisoformat(first["local_start"]) == open_at  # the first slot is the opening time
    booked = appointments.book(
        platform.state, platform.journal, "sha-jingan", open_at.astimezone(UTC), "fitting", "user_id:amy"
    )
    assert booked["status"] == "booked"
    assert platform.processor.drain()  # Appointment Booked: journal -> event store -> journeys
    platform.journeys.run_until_idle()
    assert journeys.stats(platform.state, "appointment-reminder")["active"] == 1

    sent_at = None
    for _ in range(24 * 4):  # walk the clock forward an hour at a time (no sleeping)
        shop.advance(hours=1)
        platform.journeys.run_until_idle()
        if deliveries(platform, "appointment-reminder"):
            sent_at = shop.now
            break
    assert sent_at is not None
    local = sent_at.astimezone(SHANGHAI)
    # the day before, in the morning at the store's hours (09:30 local or the first tick after), never at night
    assert local.date() == day - timedelta(days=1) and 9 <= local.hour <= 10, local
    [row] = deliveries(platform, "appointment-reminder")
    assert row.profile_id == amy and row.channel == "sms" and row.status == "queued"
    for _ in range(3):  # running again sends nothing twice
        shop.advance(hours=1)
        platform.journeys.run_until_idle()
    assert len(deliveries(platform, "appointment-reminder")) == 1


def test_story_14_stock_back_at_two_places_gives_one_message_on_the_best_channel(
    platform: Platform, shop: Clock
) -> None:
    zoe = person(platform, "zoe", first_name="Zoe", email="zoe@example.com", locale="en")
    catalog.upsert_products(platform.state, [{"sku": "LAMP-1", "name": "Lamp", "price_minor": 9900, "currency": "PLN"}])
    inventory.subscribe_back_in_stock(platform.state, "LAMP-1", "email:zoe@example.com", "waw-mokotow")
    inventory.subscribe_back_in_stock(platform.state, "LAMP-1", "email:zoe@example.com", None)  # or anywhere

    inventory.adjust(platform.state, platform.journal, "waw-mokotow", "LAMP-1", 2)  # 0 -> 2: back
    assert platform.processor.drain()
    platform.journeys.run_until_idle()
    shop.advance(hours=1)
    inventory.adjust(platform.state, platform.journal, "sha-jingan", "LAMP-1", 1)  # back elsewhere, too
    inventory.adjust(platform.state, platform.journal, "waw-mokotow", "LAMP-1", 1)  # 2 -> 3: not "back"
    assert platform.processor.drain()
    platform.journeys.run_until_idle()

    rows = deliveries(platform, "back-in-stock")
    assert [(r.profile_id, r.channel, r.status) for r in rows] == [(zoe, "email", "queued")]
    stats = journeys.stats(platform.state, "back-in-stock")
    assert stats["entered"] == 1  # the second notice the same day is not a new entry (min_interval 1d)
