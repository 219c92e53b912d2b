"""Location pings: geofence entries and exits, and telling a store that a customer with a pickup order is coming."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from accord.collect.channels import normalise_channel
from accord.collect.journal import Journal
from accord.commerce.customers import keys_of_customer
from accord.commerce.errors import InvalidInput, NotFound
from accord.commerce.events import publish, track
from accord.commerce.locations import directory
from accord.commerce.orders import OPEN_PICKUP
from accord.commerce.stock import dialect_insert
from accord.commerce.tables import orders, pickup_tasks, store_presence
from accord.storage import new_id, utcnow


def ping(
    state: sa.Engine,
    journal: Journal,
    customer_key: str,
    lat: float,
    lon: float,
    channel: str = "app",
    at: datetime | None = None,
) -> dict[str, Any]:
    """Record where a customer's device is. Entering a store's geofence emits `Store Entered` (and, when she has an
    open pickup order there, `Pickup Customer Arriving` plus a task on the store's screen); leaving emits
    `Store Exited`. Repeated pings inside the same geofence emit nothing."""
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise InvalidInput("lat must be in [-90, 90] and lon in [-180, 180]", code="invalid_coordinates")
    named = normalise_channel(channel)
    if named is None:
        raise InvalidInput(f"{channel!r} is not a channel (e.g. app, web, store, kiosk)", code="invalid_channel")
    channel = named
    now = at or utcnow()
    by_id, index = directory(state)
    inside = {p.location_id: d for d, p in index.within_geofence(lat, lon) if by_id[p.location_id].kind == "store"}
    messages: list[dict[str, Any]] = []
    entered: list[str] = []
    exited: list[str] = []
    arriving: list[dict[str, Any]] = []
    pickup_keys: list[str] | None = None
    with state.begin() as conn:
        # touch first (a write), so the presence read next is current under concurrent pings
        conn.execute(
            store_presence.update().where(store_presence.c.identifier_key == customer_key).values(last_ping_at=now)
        )
        was_inside = set(
            conn.execute(
                sa.select(store_presence.c.location_id).where(store_presence.c.identifier_key == customer_key)
            ).scalars()
        )
        for loc_id in sorted(was_inside - inside.keys()):
            gone = conn.execute(
                store_presence.delete().where(
                    store_presence.c.identifier_key == customer_key, store_presence.c.location_id == loc_id
                )
            ).rowcount
            if gone:
                exited.append(loc_id)
                messages.append(track("Store Exited", customer_key, channel, {"store_id": loc_id}, at=now))
        for loc_id, distance in sorted(inside.items(), key=lambda item: item[1]):
            if loc_id in was_inside:
                continue
            added = conn.execute(
                dialect_insert(conn)(store_presence)
                .values(identifier_key=customer_key, location_id=loc_id, entered_at=now, last_ping_at=now)
                .on_conflict_do_nothing()
            ).rowcount
            if not added:
                continue
            entered.append(loc_id)
            loc = by_id[loc_id]
            messages.append(
                track(
                    "Store Entered",
                    customer_key,
                    channel,
                    {"store_id": loc_id, "store_name": loc.name, "distance_m": round(distance)},
                    at=now,
                )
            )
            if not loc.pickup:
                continue
            if pickup_keys is None:
                pickup_keys = keys_of_customer(state, customer_key)
            open_orders = conn.execute(
                sa.select(orders.c.id, orders.c.status, orders.c.customer_key).where(
                    orders.c.customer_key.in_(pickup_keys),
                    orders.c.location_id == loc_id,
                    orders.c.fulfilment == "pickup",
                    orders.c.status.in_(OPEN_PICKUP),
                )
            ).all()
            for order in open_orders:
                task_id = new_id()
                conn.execute(
                    pickup_tasks.insert().values(
                        id=task_id,
                        location_id=loc_id,
                        order_id=order.id,
                        customer_key=order.customer_key,
                        kind="customer_arriving",
                        status="open",
                        created_at=now,
                    )
                )
                arriving.append({"task_id": task_id, "order_id": order.id, "store_id": loc_id, "status": order.status})
                messages.append(
                    track(
                        "Pickup Customer Arriving",
                        customer_key,
                        "store",
                        {"store_id": loc_id, "order_id": order.id, "order_status": order.status, "task_id": task_id},
                        at=now,
                    )
                )
        publish(conn, journal, messages)
    return {"inside": sorted(inside), "entered": entered, "exited": exited, "pickup_arrivals": arriving}


def store_tasks(
    state: sa.Engine, location_id: str, status: str | None = "open", limit: int = 100
) -> list[dict[str, Any]]:
    """The store's pickup tasks (newest first), e.g. customers with a pickup order walking in."""
    query = sa.select(pickup_tasks).where(pickup_tasks.c.location_id == location_id)
    if status:
        query = query.where(pickup_tasks.c.status == status)
    with state.connect() as conn:
        rows = conn.execute(query.order_by(pickup_tasks.c.created_at.desc()).limit(limit))
        return [dict(r._mapping) for r in rows]


def complete_task(state: sa.Engine, location_id: str, task_id: str) -> dict[str, Any]:
    """Mark a store task done (idempotent)."""
    with state.begin() as conn:
        conn.execute(
            pickup_tasks.update()
            .where(pickup_tasks.c.id == task_id, pickup_tasks.c.location_id == location_id)
            .where(pickup_tasks.c.status == "open")
            .values(status="done", done_at=utcnow())
        )
        row = conn.execute(
            sa.select(pickup_tasks).where(pickup_tasks.c.id == task_id, pickup_tasks.c.location_id == location_id)
        ).first()
    if row is None:
        raise NotFound(f"no task {task_id} at {location_id}", code="unknown_task")
    return dict(row._mapping)
