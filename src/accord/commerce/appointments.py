"""Appointments for in-store services: slots inside opening hours, at most the store's staff capacity per slot."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from accord.collect.journal import Journal
from accord.commerce.errors import Conflict, InvalidInput, NotFound
from accord.commerce.events import publish, track
from accord.commerce.hours import zone
from accord.commerce.locations import Location, get_location
from accord.commerce.stock import dialect_insert
from accord.commerce.tables import appointment_slots, appointments
from accord.storage import new_id, utcnow


def _slot_starts(loc: Location, day: date) -> list[tuple[datetime, datetime]]:
    window = loc.hours.window_on(day)
    if window is None or loc.appointment_capacity <= 0:
        return []
    step = timedelta(minutes=loc.appointment_minutes)
    out = []
    start = window[0]
    while start + step <= window[1]:
        out.append((start, start + step))
        start += step
    return out


def slots(state: sa.Engine, location_id: str, day: date, days: int = 1) -> list[dict[str, Any]]:
    """Bookable slots on local dates DAY.. (DAYS of them): start, end, local start and places left."""
    if not 1 <= days <= 31:
        raise InvalidInput("days must be between 1 and 31", code="invalid_days")
    loc = get_location(state, location_id)
    tz = zone(loc.timezone)
    now = utcnow()
    candidates = [s for d in range(days) for s in _slot_starts(loc, day + timedelta(days=d)) if s[0] > now]
    if not candidates:
        return []
    with state.connect() as conn:
        booked = {
            start.isoformat(): n
            for start, n in conn.execute(
                sa.select(appointment_slots.c.starts_at, appointment_slots.c.booked).where(
                    appointment_slots.c.location_id == location_id,
                    appointment_slots.c.starts_at >= candidates[0][0],
                    appointment_slots.c.starts_at <= candidates[-1][0],
                )
            )
        }
    return [
        {
            "starts_at": start,
            "ends_at": end,
            "local_start": start.astimezone(tz).isoformat(),
            "available": loc.appointment_capacity - booked.get(start.isoformat(), 0),
        }
        for start, end in candidates
        if loc.appointment_capacity - booked.get(start.isoformat(), 0) > 0
    ]


def _view(row: Any, loc: Location) -> dict[str, Any]:
    view = dict(row._mapping) if hasattr(row, "_mapping") else dict(row)
    view["local_start"] = view["starts_at"].astimezone(zone(loc.timezone)).isoformat()
    view["timezone"] = loc.timezone
    return view


def book(
    state: sa.Engine,
    journal: Journal,
    location_id: str,
    starts_at: datetime,
    service: str,
    customer_key: str | None,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """Book a slot: it must be one of the store's slots (inside opening hours, in the future) with a free place;
    the place is taken by a conditional UPDATE, so capacity holds under concurrency. Emits `Appointment Booked`."""
    loc = get_location(state, location_id)
    if idempotency_key:
        with state.connect() as conn:
            row = conn.execute(sa.select(appointments).where(appointments.c.idempotency_key == idempotency_key)).first()
        if row is not None:
            return _view(row, loc)
    if starts_at.tzinfo is None:
        raise InvalidInput("starts_at needs a UTC offset", code="invalid_time")
    local_day = starts_at.astimezone(zone(loc.timezone)).date()
    match = [s for s in _slot_starts(loc, local_day) if s[0] == starts_at]
    if not match:
        raise Conflict(
            f"{starts_at.isoformat()} is not an appointment slot of {loc.name} (inside opening hours, "
            f"every {loc.appointment_minutes} minutes from opening)",
            code="slot_outside_hours",
        )
    if starts_at <= utcnow():
        raise InvalidInput("the slot is in the past", code="invalid_slot")
    ends_at = match[0][1]
    now = utcnow()
    appointment_id = new_id()
    try:
        with state.begin() as conn:
            conn.execute(
                dialect_insert(conn)(appointment_slots)
                .values(location_id=location_id, starts_at=starts_at, booked=0)
                .on_conflict_do_nothing()
            )
            taken = conn.execute(
                appointment_slots.update()
                .where(
                    appointment_slots.c.location_id == location_id,
                    appointment_slots.c.starts_at == starts_at,
                    appointment_slots.c.booked < loc.appointment_capacity,
                )
                .values(booked=appointment_slots.c.booked + 1)
            ).rowcount
            if not taken:
                raise Conflict("that slot is fully booked", code="slot_full")
            values = {
                "id": appointment_id,
                "idempotency_key": idempotency_key,
                "location_id": location_id,
                "service": service,
                "starts_at": starts_at,
                "ends_at": ends_at,
                "customer_key": customer_key,
                "status": "booked",
                "created_at": now,
            }
            conn.execute(appointments.insert().values(**values))
            props = {
                "appointment_id": appointment_id,
                "store_id": location_id,
                "service": service,
                "starts_at": starts_at.isoformat(),
                "local_start": starts_at.astimezone(zone(loc.timezone)).isoformat(),
                "timezone": loc.timezone,
            }
            publish(conn, journal, [track("Appointment Booked", customer_key, "store", props, at=now)])
    except IntegrityError:
        if not idempotency_key:
            raise
        return book(state, journal, location_id, starts_at, service, customer_key, idempotency_key)
    return _view(values, loc)


def cancel(state: sa.Engine, journal: Journal, appointment_id: str) -> dict[str, Any]:
    """Cancel an appointment and free its place (idempotent). Emits `Appointment Cancelled`."""
    with state.begin() as conn:
        row = conn.execute(sa.select(appointments).where(appointments.c.id == appointment_id)).first()
        if row is None:
            raise NotFound(f"no appointment {appointment_id}", code="unknown_appointment")
        loc = get_location(state, row.location_id)
        done = conn.execute(
            appointments.update()
            .where(appointments.c.id == appointment_id, appointments.c.status == "booked")
            .values(status="cancelled")
        ).rowcount
        if done:
            conn.execute(
                appointment_slots.update()
                .where(
                    appointment_slots.c.location_id == row.location_id,
                    appointment_slots.c.starts_at == row.starts_at,
                )
                .values(booked=appointment_slots.c.booked - 1)
            )
            props = {"appointment_id": appointment_id, "store_id": row.location_id, "service": row.service}
            publish(conn, journal, [track("Appointment Cancelled", row.customer_key, "store", props)])
        row = conn.execute(sa.select(appointments).where(appointments.c.id == appointment_id)).one()
    return _view(row, loc)


def reminder_time(state: sa.Engine, appointment_id: str, lead: timedelta) -> datetime:
    """When to remind: LEAD before the appointment, moved into the store's opening hours if that falls outside
    them (never asking anyone to act while the store is closed), and never after the appointment."""
    with state.connect() as conn:
        row = conn.execute(sa.select(appointments).where(appointments.c.id == appointment_id)).first()
    if row is None:
        raise NotFound(f"no appointment {appointment_id}", code="unknown_appointment")
    loc = get_location(state, row.location_id)
    wanted: datetime = row.starts_at - lead
    if loc.hours.is_open(wanted):
        return wanted
    # the latest opening-hours instant before WANTED (previous window's close), else the day's opening
    local_day = wanted.astimezone(zone(loc.timezone)).date()
    for back in range(0, 8):
        window = loc.hours.window_on(local_day - timedelta(days=back))
        if window is not None and window[0] <= wanted:
            return min(window[1] - timedelta(minutes=1), wanted)
    return min(row.starts_at, loc.hours.next_open(wanted) or row.starts_at)
