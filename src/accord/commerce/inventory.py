"""Inventory: stock levels, adjustments, cycle counts and accuracy, reservations with expiry, availability."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from accord.collect.journal import Journal
from accord.commerce.errors import Conflict, InsufficientStock, InvalidInput, NotFound
from accord.commerce.locations import geo_index, get_location
from accord.commerce.stock import atp_column, atp_of, back_in_stock, change_level, record_movement, reserve_units
from accord.commerce.tables import reservations, stock_levels, stock_movements, stock_subscriptions
from accord.storage import new_id, utcnow

MAX_TTL_SECONDS = 30 * 24 * 3600
DEFAULT_TTL_SECONDS = 15 * 60


def positive_int(value: Any, name: str, allow_zero: bool = False) -> int:
    low = 0 if allow_zero else 1
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= 1_000_000_000:
        raise InvalidInput(f"{name} must be a whole number >= {low}", code="invalid_quantity")
    return value


def stock_level(state: sa.Engine, location_id: str, sku: str) -> dict[str, Any]:
    """On hand, reserved, safety stock and atp_column of SKU at a location (zeros when never stocked)."""
    with state.connect() as conn:
        row = conn.execute(
            sa.select(stock_levels.c.on_hand, stock_levels.c.reserved, stock_levels.c.safety_stock).where(
                stock_levels.c.location_id == location_id, stock_levels.c.sku == sku
            )
        ).first()
    on_hand, reserved, safety = (row.on_hand, row.reserved, row.safety_stock) if row else (0, 0, 0)
    return {
        "location_id": location_id,
        "sku": sku,
        "on_hand": on_hand,
        "reserved": reserved,
        "safety_stock": safety,
        "atp": atp_of(on_hand, reserved, safety),
    }


def adjust(
    state: sa.Engine,
    journal: Journal,
    location_id: str,
    sku: str,
    delta: int,
    reason: str = "adjustment",
    reference: str | None = None,
) -> dict[str, Any]:
    """Receive (delta > 0) or write off (delta < 0) units; on hand never goes below zero."""
    if not isinstance(delta, int) or isinstance(delta, bool) or delta == 0:
        raise InvalidInput("delta must be a non-zero whole number", code="invalid_quantity")
    get_location(state, location_id)
    with state.begin() as conn:
        before, after = change_level(conn, location_id, sku, on_hand_delta=delta)
        on_hand = conn.execute(
            sa.select(stock_levels.c.on_hand).where(
                stock_levels.c.location_id == location_id, stock_levels.c.sku == sku
            )
        ).scalar_one()
        if on_hand < 0:
            raise Conflict(
                f"only {on_hand - delta} units on hand at {location_id}; cannot remove {-delta}", code="negative_stock"
            )
        record_movement(conn, location_id, sku, "receipt" if delta > 0 else "adjustment", delta, reason, reference)
        back_in_stock(conn, journal, location_id, sku, before, after)
    return stock_level(state, location_id, sku)


def set_safety_stock(
    state: sa.Engine, journal: Journal, location_id: str, sku: str, safety_stock: int
) -> dict[str, Any]:
    """Keep SAFETY_STOCK units out of atp_column at a location."""
    positive_int(safety_stock, "safety_stock", allow_zero=True)
    get_location(state, location_id)
    before = stock_level(state, location_id, sku)["atp"]
    with state.begin() as conn:
        change_level(conn, location_id, sku)
        conn.execute(
            stock_levels.update()
            .where(stock_levels.c.location_id == location_id, stock_levels.c.sku == sku)
            .values(safety_stock=safety_stock, updated_at=utcnow())
        )
        row = conn.execute(
            sa.select(stock_levels.c.on_hand, stock_levels.c.reserved).where(
                stock_levels.c.location_id == location_id, stock_levels.c.sku == sku
            )
        ).one()
        back_in_stock(conn, journal, location_id, sku, before, atp_of(row.on_hand, row.reserved, safety_stock))
    return stock_level(state, location_id, sku)


def cycle_count(
    state: sa.Engine, journal: Journal, location_id: str, sku: str, counted: int, reason: str = "cycle count"
) -> dict[str, Any]:
    """Record a physical count: on hand becomes COUNTED; the difference to the book is kept for accuracy."""
    positive_int(counted, "counted", allow_zero=True)
    get_location(state, location_id)
    with state.begin() as conn:
        # claim the row first (a write), so the book figure read next is the one being replaced
        change_level(conn, location_id, sku)
        expected = conn.execute(
            sa.select(stock_levels.c.on_hand).where(
                stock_levels.c.location_id == location_id, stock_levels.c.sku == sku
            )
        ).scalar_one()
        before, after = change_level(conn, location_id, sku, on_hand_delta=counted - expected)
        record_movement(conn, location_id, sku, "cycle_count", counted - expected, reason, None, expected, counted)
        back_in_stock(conn, journal, location_id, sku, before, after)
    level = stock_level(state, location_id, sku)
    level.update(expected=expected, counted=counted, difference=counted - expected)
    return level


def inventory_accuracy(
    state: sa.Engine, location_id: str | None = None, since: datetime | None = None
) -> dict[str, Any]:
    """Inventory record accuracy from cycle counts: the share of counts where the book matched the shelf, and
    the unit accuracy 1 - sum|counted - expected| / sum expected."""
    m = stock_movements
    query = sa.select(m.c.expected, m.c.counted).where(m.c.kind == "cycle_count")
    if location_id:
        query = query.where(m.c.location_id == location_id)
    if since:
        query = query.where(m.c.at >= since)
    with state.connect() as conn:
        rows = conn.execute(query).all()
    counts = len(rows)
    exact = sum(1 for e, c in rows if e == c)
    expected_units = sum(max(e, 0) for e, _ in rows)
    abs_diff = sum(abs(c - e) for e, c in rows)
    return {
        "location_id": location_id,
        "counts": counts,
        "exact_counts": exact,
        "record_accuracy": round(exact / counts, 4) if counts else None,
        "unit_accuracy": round(max(0.0, 1 - abs_diff / expected_units), 4) if expected_units else None,
        "units_expected": expected_units,
        "units_off": abs_diff,
    }


@dataclass(frozen=True)
class Reservation:
    """Units held for a customer or an order at one location."""

    id: str
    location_id: str
    sku: str
    quantity: int
    status: str
    expires_at: datetime | None
    order_id: str | None
    customer_key: str | None
    idempotency_key: str | None
    created_at: datetime

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return asdict(self)


def _reservation(row: Any) -> Reservation:
    return Reservation(
        row.id,
        row.location_id,
        row.sku,
        row.quantity,
        row.status,
        row.expires_at,
        row.order_id,
        row.customer_key,
        row.idempotency_key,
        row.created_at,
    )


def get_reservation(state: sa.Engine, reservation_id: str) -> Reservation:
    """One reservation (NotFound if unknown)."""
    with state.connect() as conn:
        row = conn.execute(sa.select(reservations).where(reservations.c.id == reservation_id)).first()
    if row is None:
        raise NotFound(f"no reservation {reservation_id}", code="unknown_reservation")
    return _reservation(row)


def _by_key(state: sa.Engine, key: str) -> Reservation | None:
    with state.connect() as conn:
        row = conn.execute(sa.select(reservations).where(reservations.c.idempotency_key == key)).first()
    return _reservation(row) if row else None


def _same_request(found: Reservation, location_id: str, sku: str, quantity: int) -> Reservation:
    if (found.location_id, found.sku, found.quantity) != (location_id, sku, quantity):
        raise Conflict("this idempotency key was used for a different reservation", code="idempotency_key_reused")
    return found


def reserve(
    state: sa.Engine,
    journal: Journal,
    location_id: str,
    sku: str,
    quantity: int,
    ttl_seconds: int = DEFAULT_TTL_SECONDS,
    customer_key: str | None = None,
    idempotency_key: str | None = None,
) -> Reservation:
    """Hold QUANTITY units of SKU at a location for TTL_SECONDS. Never oversells; a retried request with the same
    idempotency key gets the same reservation. InsufficientStock (409) when atp_column is short."""
    positive_int(quantity, "quantity")
    if not isinstance(ttl_seconds, int) or not 1 <= ttl_seconds <= MAX_TTL_SECONDS:
        raise InvalidInput(f"ttl_seconds must be in [1, {MAX_TTL_SECONDS}]", code="invalid_ttl")
    if idempotency_key is not None and (found := _by_key(state, idempotency_key)) is not None:
        return _same_request(found, location_id, sku, quantity)
    get_location(state, location_id)
    for attempt in range(2):
        now = utcnow()
        try:
            with state.begin() as conn:
                if not reserve_units(conn, location_id, sku, quantity):
                    raise InsufficientStock(f"fewer than {quantity} units of {sku} available at {location_id}")
                reservation_id = new_id()
                row: dict[str, Any] = {
                    "id": reservation_id,
                    "location_id": location_id,
                    "sku": sku,
                    "quantity": quantity,
                    "status": "active",
                    "expires_at": now + timedelta(seconds=ttl_seconds),
                    "order_id": None,
                    "customer_key": customer_key,
                    "idempotency_key": idempotency_key,
                    "created_at": now,
                    "updated_at": now,
                }
                conn.execute(reservations.insert().values(**row))
            return Reservation(**{name: row[name] for name in Reservation.__dataclass_fields__})
        except InsufficientStock:
            # expired holds may still count against atp_column: release them once and try again
            if attempt == 0 and release_expired(state, journal, location_id=location_id, sku=sku):
                continue
            raise
        except IntegrityError:
            if idempotency_key is None:
                raise
            found = _by_key(state, idempotency_key)  # a concurrent retry won the key
            if found is None:
                raise
            return _same_request(found, location_id, sku, quantity)
    raise InsufficientStock(f"fewer than {quantity} units of {sku} available at {location_id}")


def _end(
    conn: sa.Connection, journal: Journal, reservation_id: str, from_statuses: tuple[str, ...], to_status: str
) -> Reservation | None:
    """Move an active reservation to released/expired/consumed exactly once and give its units back (or sell them)."""
    now = utcnow()
    claimed = conn.execute(
        reservations.update()
        .where(reservations.c.id == reservation_id, reservations.c.status.in_(from_statuses))
        .values(status=to_status, updated_at=now)
    ).rowcount
    if not claimed:
        return None
    row = conn.execute(sa.select(reservations).where(reservations.c.id == reservation_id)).one()
    if to_status == "consumed":
        change_level(conn, row.location_id, row.sku, on_hand_delta=-row.quantity, reserved_delta=-row.quantity, now=now)
        record_movement(conn, row.location_id, row.sku, "sale", -row.quantity, "fulfilled", row.order_id)
    else:
        before, after = change_level(conn, row.location_id, row.sku, reserved_delta=-row.quantity, now=now)
        back_in_stock(conn, journal, row.location_id, row.sku, before, after)
    return _reservation(row)


def release(state: sa.Engine, journal: Journal, reservation_id: str) -> Reservation:
    """Give a reservation's units back (idempotent: releasing twice is harmless; a consumed one cannot be)."""
    with state.begin() as conn:
        ended = _end(conn, journal, reservation_id, ("active",), "released")
    if ended is not None:
        return get_reservation(state, reservation_id)
    found = get_reservation(state, reservation_id)
    if found.status == "consumed":
        raise Conflict("the reservation was already fulfilled", code="reservation_consumed")
    return found


def release_expired(
    state: sa.Engine,
    journal: Journal,
    now: datetime | None = None,
    location_id: str | None = None,
    sku: str | None = None,
    limit: int = 500,
) -> int:
    """Expire holds whose time has passed (order holds have no expiry: their order decides). Returns the count."""
    now = now or utcnow()
    query = (
        sa.select(reservations.c.id)
        .where(reservations.c.status == "active", reservations.c.expires_at <= now)
        .order_by(reservations.c.expires_at)
        .limit(limit)
    )
    if location_id:
        query = query.where(reservations.c.location_id == location_id)
    if sku:
        query = query.where(reservations.c.sku == sku)
    with state.connect() as conn:
        ids = list(conn.execute(query).scalars())
    done = 0
    for chunk in range(0, len(ids), 100):
        with state.begin() as conn:
            for reservation_id in ids[chunk : chunk + 100]:
                if _end(conn, journal, reservation_id, ("active",), "expired") is not None:
                    done += 1
    return done


def end_reservations(conn: sa.Connection, journal: Journal, reservation_ids: list[str], to_status: str) -> None:
    """Release or consume an order's holds inside the order's transaction."""
    for reservation_id in reservation_ids:
        _end(conn, journal, reservation_id, ("active",), to_status)


def availability(
    state: sa.Engine,
    sku: str,
    lat: float,
    lon: float,
    limit: int = 5,
    kinds: tuple[str, ...] = ("store",),
    radius_km: float | None = None,
    min_quantity: int = 1,
) -> list[dict[str, Any]]:
    """Locations that really have SKU (atp_column >= MIN_QUANTITY), nearest first, with distance and atp_column.

    The locations' coordinates live in an in-memory index; the stock table is asked only about the nearest few
    candidates (one indexed query), and about all holders of the SKU only when the nearest ones fall short."""
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise InvalidInput("lat must be in [-90, 90] and lon in [-180, 180]", code="invalid_coordinates")
    if not 1 <= limit <= 100:
        raise InvalidInput("limit must be between 1 and 100", code="invalid_limit")
    by_id, index = geo_index(state, kinds)
    if not index.points:
        return []
    chords = index.chords(lat, lon)
    limit_c2 = index.chord2(radius_km * 1000) if radius_km is not None else 4.0
    base = sa.select(stock_levels.c.location_id, atp_column.label("atp")).where(
        stock_levels.c.sku == sku, atp_column >= min_quantity
    )
    with state.connect() as conn:
        nearest = [i for i in index.nearest(chords, max(4 * limit, 16)) if chords[i] <= limit_c2]
        candidates = [index.points[i].location_id for i in nearest]
        found: dict[str, int] = dict(conn.execute(base.where(stock_levels.c.location_id.in_(candidates))).all())
        if len(found) < limit and len(nearest) < len(index.points) and len(candidates) == max(4 * limit, 16):
            position = index.position
            found = {
                loc: atp for loc, atp in conn.execute(base) if loc in position and chords[position[loc]] <= limit_c2
            }
    distance = {loc: index.metres(chords[index.position[loc]]) for loc in found}
    ordered = sorted(found.items(), key=lambda item: distance[item[0]])[:limit]
    out = []
    for loc_id, atp in ordered:
        loc = by_id[loc_id]
        out.append(
            {
                "location_id": loc_id,
                "name": loc.name,
                "kind": loc.kind,
                "city": loc.city,
                "lat": loc.lat,
                "lon": loc.lon,
                "distance_m": round(distance[loc_id]),
                "atp": int(atp),
                "pickup": loc.pickup,
                "timezone": loc.timezone,
            }
        )
    return out


def subscribe_back_in_stock(
    state: sa.Engine, sku: str, customer_key: str, location_id: str | None = None
) -> dict[str, Any]:
    """Ask to be told once when SKU is available again (at LOCATION_ID, or anywhere when None)."""
    if location_id is not None:
        get_location(state, location_id)
    subs = stock_subscriptions
    where = [subs.c.sku == sku, subs.c.customer_key == customer_key, subs.c.status == "waiting"]
    where.append(subs.c.location_id == location_id if location_id else subs.c.location_id.is_(None))
    with state.begin() as conn:
        existing = conn.execute(sa.select(subs.c.id).where(*where)).scalar()
        if existing is None:
            existing = new_id()
            conn.execute(
                subs.insert().values(
                    id=existing,
                    sku=sku,
                    location_id=location_id,
                    customer_key=customer_key,
                    status="waiting",
                    created_at=utcnow(),
                )
            )
    return {"id": existing, "sku": sku, "location_id": location_id, "customer_key": customer_key, "status": "waiting"}


def subscriptions_of(state: sa.Engine, customer_keys: list[str]) -> list[dict[str, Any]]:
    """Back-in-stock subscriptions of a customer (by all their identifier keys)."""
    subs = stock_subscriptions
    with state.connect() as conn:
        rows = conn.execute(sa.select(subs).where(subs.c.customer_key.in_(customer_keys)).order_by(subs.c.created_at))
        return [dict(r._mapping) for r in rows]
