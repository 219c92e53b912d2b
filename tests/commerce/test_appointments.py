"""Appointments: slots inside opening hours, staff capacity held under concurrency, reminders inside the hours."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from accord.commerce import appointments, locations
from accord.commerce.errors import CommerceError, Conflict
from accord.platform import Platform
from accord.storage import utcnow

WARSAW = ZoneInfo("Europe/Warsaw")


def _next_weekday() -> datetime:
    day = (utcnow() + timedelta(days=2)).astimezone(WARSAW).date()
    while day.weekday() == 6:
        day += timedelta(days=1)
    return datetime(day.year, day.month, day.day, tzinfo=WARSAW)


def test_slots_follow_hours_and_capacity(shop: Platform) -> None:
    s, j = shop.state, shop.journal
    locations.upsert_locations(
        s,
        [
            {
                "id": "waw-mokotow",
                "name": "Mokotów",
                "lat": 52.18,
                "lon": 21.0,
                "timezone": "Europe/Warsaw",
                "appointment_capacity": 2,
                "opening_hours": {
                    "mon": ["09:00", "12:00"],
                    "tue": ["09:00", "12:00"],
                    "wed": ["09:00", "12:00"],
                    "thu": ["09:00", "12:00"],
                    "fri": ["09:00", "12:00"],
                    "sat": ["09:00", "12:00"],
                },
            }
        ],
    )
    day = _next_weekday()
    free = appointments.slots(s, "waw-mokotow", day.date())
    assert len(free) == 6 and free[0]["local_start"].startswith(f"{day.date().isoformat()}T09:00")
    start = day.replace(hour=9)
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda i: _try_book(shop, start, f"user_id:c{i}"), range(6)))
    assert results.count("booked") == 2 and results.count("slot_full") == 4
    assert len(appointments.slots(s, "waw-mokotow", day.date())) == 5
    with pytest.raises(Conflict, match="not an appointment slot"):
        appointments.book(s, j, "waw-mokotow", day.replace(hour=8, minute=30), "fitting", "user_id:x")
    with pytest.raises(Conflict, match="not an appointment slot"):
        appointments.book(s, j, "waw-mokotow", day.replace(hour=11, minute=45), "fitting", "user_id:x")
    locations.set_hours_exception(s, "waw-mokotow", day.date().isoformat(), None)  # closed that day
    assert appointments.slots(s, "waw-mokotow", day.date()) == []


def _try_book(shop: Platform, start: datetime, customer: str) -> str:
    try:
        appointments.book(shop.state, shop.journal, "waw-mokotow", start, "fitting", customer)
        return "booked"
    except CommerceError as exc:
        return exc.code


def test_reminder_never_falls_outside_opening_hours(shop: Platform) -> None:
    """Story 10: a reminder 24 h before a 09:00 appointment would fall at 09:00 the day before (open: kept); one
    2 h before falls at 07:00 (closed): it moves to the previous evening's closing, never before opening."""
    s, j = shop.state, shop.journal
    locations.upsert_locations(
        s,
        [
            {
                "id": "waw-mokotow",
                "name": "Mokotów",
                "lat": 52.18,
                "lon": 21.0,
                "timezone": "Europe/Warsaw",
                "appointment_capacity": 1,
                "opening_hours": {d: ["09:00", "21:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
            }
        ],
    )
    start = _next_weekday().replace(hour=9)
    booked = appointments.book(s, j, "waw-mokotow", start, "fitting", "user_id:ann", idempotency_key="a-1")
    assert (
        appointments.book(s, j, "waw-mokotow", start, "fitting", "user_id:ann", idempotency_key="a-1")["id"]
        == (booked["id"])
    )
    at = appointments.reminder_time(s, booked["id"], timedelta(hours=2))
    local = at.astimezone(WARSAW)
    assert local < start and (local.hour, local.minute) == (20, 59)
    assert appointments.reminder_time(s, booked["id"], timedelta(hours=24)) == start - timedelta(hours=24)
    cancelled = appointments.cancel(s, j, booked["id"])
    assert cancelled["status"] == "cancelled"
    assert len(appointments.slots(s, "waw-mokotow", start.date())) == 24
