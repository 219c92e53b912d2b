"""Low-level stock statements shared by inventory and orders: atomic, conditional, race-safe on every engine."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from accord.collect.journal import Journal
from accord.commerce.events import publish, track
from accord.commerce.tables import catalog_items, stock_levels, stock_movements, stock_subscriptions
from accord.storage import utcnow

atp_column = stock_levels.c.on_hand - stock_levels.c.reserved - stock_levels.c.safety_stock


def atp_of(on_hand: int, reserved: int, safety_stock: int) -> int:
    """Available to promise: never below zero."""
    return max(on_hand - reserved - safety_stock, 0)


def dialect_insert(conn: sa.Connection) -> Any:
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


def change_level(
    conn: sa.Connection,
    location_id: str,
    sku: str,
    on_hand_delta: int = 0,
    reserved_delta: int = 0,
    now: datetime | None = None,
) -> tuple[int, int]:
    """Apply deltas to a stock level (creating it at zero), atomically; returns (ATP before, ATP after)."""
    now = now or utcnow()
    insert = dialect_insert(conn)(stock_levels).values(
        location_id=location_id, sku=sku, on_hand=on_hand_delta, reserved=reserved_delta, safety_stock=0, updated_at=now
    )
    stmt = insert.on_conflict_do_update(
        index_elements=["location_id", "sku"],
        set_={
            "on_hand": stock_levels.c.on_hand + on_hand_delta,
            "reserved": stock_levels.c.reserved + reserved_delta,
            "updated_at": now,
        },
    ).returning(stock_levels.c.on_hand, stock_levels.c.reserved, stock_levels.c.safety_stock)
    on_hand, reserved, safety = conn.execute(stmt).one()
    before = atp_of(on_hand - on_hand_delta, reserved - reserved_delta, safety)
    return before, atp_of(on_hand, reserved, safety)


def reserve_units(conn: sa.Connection, location_id: str, sku: str, quantity: int) -> bool:
    """Take QUANTITY units of ATP for a reservation if (and only if) they are available: one conditional UPDATE,
    so concurrent reservations never oversell (SQLite serialises writers; PostgreSQL re-checks the row)."""
    result = conn.execute(
        stock_levels.update()
        .where(stock_levels.c.location_id == location_id, stock_levels.c.sku == sku, atp_column >= quantity)
        .values(reserved=stock_levels.c.reserved + quantity, updated_at=utcnow())
    )
    return result.rowcount == 1


def record_movement(
    conn: sa.Connection,
    location_id: str,
    sku: str,
    kind: str,
    delta: int,
    reason: str | None = None,
    reference: str | None = None,
    expected: int | None = None,
    counted: int | None = None,
) -> None:
    """Keep the history of on-hand changes."""
    conn.execute(
        stock_movements.insert().values(
            location_id=location_id,
            sku=sku,
            kind=kind,
            delta=delta,
            reason=reason,
            reference=reference,
            expected=expected,
            counted=counted,
            at=utcnow(),
        )
    )


def location_channel(location_id: str) -> str:
    """The channel of things happening at a location: the web for the online centre, else the store."""
    return "web" if location_id == "online" else "store"


def back_in_stock(
    conn: sa.Connection, journal: Journal, location_id: str, sku: str, before: int, after: int
) -> list[str]:
    """When atp_column at a location went from zero to positive: notify each waiting subscriber once (a `Back In Stock`
    event on their timeline, which journeys turn into one message on their best channel)."""
    if not (before <= 0 < after):
        return []
    subs = stock_subscriptions
    waiting = conn.execute(
        sa.select(subs.c.id, subs.c.customer_key).where(
            subs.c.sku == sku,
            subs.c.status == "waiting",
            sa.or_(subs.c.location_id == location_id, subs.c.location_id.is_(None)),
        )
    ).all()
    if not waiting:
        return []
    name = conn.execute(sa.select(catalog_items.c.name).where(catalog_items.c.sku == sku)).scalar()
    now = utcnow()
    messages: list[dict[str, Any]] = []
    notified: list[str] = []
    for sub_id, customer_key in waiting:
        claimed = conn.execute(
            subs.update()
            .where(subs.c.id == sub_id, subs.c.status == "waiting")
            .values(status="notified", notified_at=now, notified_location_id=location_id)
        ).rowcount
        if not claimed:
            continue  # notified by a concurrent change
        notified.append(sub_id)
        messages.append(
            track(
                "Back In Stock",
                customer_key,
                location_channel(location_id),
                {
                    "sku": sku,
                    "product_name": name,
                    "store_id": location_id,
                    "available": after,
                    "subscription_id": sub_id,
                },
            )
        )
    publish(conn, journal, messages)
    return notified


def levels(conn: sa.Connection, location_id: str, skus: Sequence[str]) -> dict[str, tuple[int, int, int]]:
    """(on_hand, reserved, safety_stock) per SKU at a location."""
    rows = conn.execute(
        sa.select(
            stock_levels.c.sku, stock_levels.c.on_hand, stock_levels.c.reserved, stock_levels.c.safety_stock
        ).where(stock_levels.c.location_id == location_id, stock_levels.c.sku.in_(list(skus)))
    )
    return {sku: (on_hand, reserved, safety) for sku, on_hand, reserved, safety in rows}
