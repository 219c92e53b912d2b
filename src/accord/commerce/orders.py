"""Orders across channels and fulfilment types: placement with stock holds, status transitions, pickup, returns."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from accord.collect.journal import Journal
from accord.commerce.catalog import currency_code, price_for, sales_channel
from accord.commerce.errors import Conflict, InsufficientStock, InvalidInput, NotFound
from accord.commerce.events import major, publish, track
from accord.commerce.inventory import end_reservations
from accord.commerce.locations import Location, get_location
from accord.commerce.stock import back_in_stock, change_level, location_channel, record_movement, reserve_units
from accord.commerce.tables import order_history, order_lines, order_returns, orders, reservations
from accord.storage import new_id, utcnow

FULFILMENTS = ("ship", "pickup", "ship_from_store", "store_delivery")
OPEN_PICKUP = ("placed", "picking", "ready_for_pickup")
EVENT_CHANNEL = {"web": "web", "app": "app", "store": "store", "call_center": "call_center", "marketplace": "other"}

# status -> statuses it may move to (returns move delivered/picked-up orders to returned through return_order)
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "placed": ("picking", "ready_for_pickup", "shipped", "cancelled"),
    "picking": ("ready_for_pickup", "shipped", "cancelled"),
    "ready_for_pickup": ("picked_up", "expired", "cancelled"),
    "shipped": ("delivered",),
    "picked_up": (),
    "delivered": (),
    "expired": (),
    "cancelled": (),
    "returned": (),
}
STATUS_EVENTS = {
    "placed": "Order Placed",
    "picking": "Order Picking",
    "ready_for_pickup": "Order Ready For Pickup",
    "picked_up": "Order Picked Up",
    "shipped": "Order Shipped",
    "delivered": "Order Delivered",
    "cancelled": "Order Cancelled",
    "expired": "Order Expired",
    "returned": "Order Returned",
}


def _parse_time(value: Any, name: str) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise InvalidInput(f"{name} must be an ISO 8601 time, got {value!r}", code="invalid_time") from exc
    else:
        raise InvalidInput(f"{name} must be an ISO 8601 time", code="invalid_time")
    if parsed.tzinfo is None:
        raise InvalidInput(f"{name} needs a UTC offset (e.g. 2026-11-24T15:00:00+01:00)", code="invalid_time")
    return parsed


def _lines(raw: Any) -> list[tuple[str, int, int | None]]:
    if not isinstance(raw, list) or not raw:
        raise InvalidInput("an order needs lines: [{sku, quantity}]", code="invalid_order")
    out: list[tuple[str, int, int | None]] = []
    for i, line in enumerate(raw):
        if not isinstance(line, Mapping):
            raise InvalidInput(f"line {i} must be an object", code="invalid_order")
        sku, qty, price = line.get("sku"), line.get("quantity", 1), line.get("unit_price_minor")
        if not isinstance(sku, str) or not sku:
            raise InvalidInput(f"line {i} needs a sku", code="invalid_order")
        if not isinstance(qty, int) or isinstance(qty, bool) or not 1 <= qty <= 100_000:
            raise InvalidInput(f"line {i}: quantity must be a whole number >= 1", code="invalid_quantity")
        if price is not None and (not isinstance(price, int) or isinstance(price, bool) or price < 0):
            raise InvalidInput(f"line {i}: unit_price_minor must be a whole number >= 0", code="invalid_amount")
        out.append((sku, qty, price))
    return out


def _check_fulfilment(
    fulfilment: str, loc: Location, origin: Location | None, slot: tuple[datetime, datetime] | None
) -> None:
    if fulfilment not in FULFILMENTS:
        raise InvalidInput(f"fulfilment must be one of {', '.join(FULFILMENTS)}", code="invalid_fulfilment")
    if fulfilment == "pickup":
        if not loc.pickup:
            raise Conflict(f"{loc.id} does not offer pickup", code="pickup_not_offered")
        if slot is not None:
            start, end = slot
            if start < utcnow():
                raise InvalidInput("the pickup slot is in the past", code="invalid_slot")
            if not loc.hours.within(start, end):
                raise Conflict(
                    f"the pickup slot is outside {loc.name}'s opening hours ({loc.timezone})", code="slot_outside_hours"
                )
    elif slot is not None:
        raise InvalidInput("only pickup orders take a pickup slot", code="invalid_slot")
    if fulfilment == "ship_from_store" and not (loc.kind == "store" and loc.ship_from_store):
        raise Conflict(f"{loc.id} does not ship from store", code="ship_from_store_not_offered")
    if fulfilment == "store_delivery" and (origin is None or origin.kind != "store"):
        raise InvalidInput("an order in store for delivery needs origin_location_id of a store", code="invalid_order")


def get_order(state: sa.Engine, order_id: str) -> dict[str, Any]:
    """An order with its lines, history and returns (NotFound if unknown)."""
    with state.connect() as conn:
        return _order_view(conn, order_id)


def _order_view(conn: sa.Connection, order_id: str) -> dict[str, Any]:
    row = conn.execute(sa.select(orders).where(orders.c.id == order_id)).first()
    if row is None:
        raise NotFound(f"no order {order_id}", code="unknown_order")
    lines = conn.execute(
        sa.select(order_lines).where(order_lines.c.order_id == order_id).order_by(order_lines.c.line_no)
    )
    history = conn.execute(
        sa.select(order_history.c.status, order_history.c.at, order_history.c.note)
        .where(order_history.c.order_id == order_id)
        .order_by(order_history.c.id)
    )
    view = dict(row._mapping)
    view.pop("shipping_address")
    view["shipping_address"] = json.loads(row.shipping_address) if row.shipping_address else None
    view["lines"] = [
        {
            "line_no": ln.line_no,
            "sku": ln.sku,
            "quantity": ln.quantity,
            "unit_price_minor": ln.unit_price_minor,
            "returned_quantity": ln.returned_quantity,
        }
        for ln in lines
    ]
    view["history"] = [dict(h._mapping) for h in history]
    return view


def _by_key(state: sa.Engine, key: str) -> str | None:
    with state.connect() as conn:
        found: str | None = conn.execute(sa.select(orders.c.id).where(orders.c.idempotency_key == key)).scalar()
        return found


def _products(lines: Sequence[Mapping[str, Any]], currency: str) -> list[dict[str, Any]]:
    return [
        {"sku": ln["sku"], "quantity": ln["quantity"], "price": major(ln["unit_price_minor"], currency)} for ln in lines
    ]


def _order_props(view: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "order_id": view["id"],
        "store_id": view["location_id"],
        "fulfilment": view["fulfilment"],
        "sales_channel": view["channel"],
        "status": view["status"],
        "currency": view["currency"],
        "total_minor": view["total_minor"],
        "products": _products(view["lines"], view["currency"]),
    }


def place_order(state: sa.Engine, journal: Journal, data: Mapping[str, Any]) -> dict[str, Any]:
    """Place an order: validate, price from the catalog (per channel), hold stock at the fulfilling location for
    every line (all or nothing; InsufficientStock otherwise), record it and emit `Order Placed`, in one transaction.

    DATA: channel, fulfilment, location_id, lines [{sku, quantity, unit_price_minor?}], customer (identifier key),
    pickup_slot_start/pickup_slot_end (pickup), origin_location_id (store_delivery), shipping_address,
    idempotency_key. A retry with the same idempotency key returns the same order."""
    key = data.get("idempotency_key")
    if key is not None and (existing := _by_key(state, str(key))) is not None:
        return get_order(state, existing)
    channel = sales_channel(str(data.get("channel", "")))
    fulfilment = str(data.get("fulfilment", ""))
    loc = get_location(state, str(data.get("location_id", "")))
    origin = get_location(state, str(data["origin_location_id"])) if data.get("origin_location_id") else None
    slot: tuple[datetime, datetime] | None = None
    if data.get("pickup_slot_start"):
        start = _parse_time(data["pickup_slot_start"], "pickup_slot_start")
        end = _parse_time(data["pickup_slot_end"], "pickup_slot_end") if data.get("pickup_slot_end") else None
        end = end or start + timedelta(minutes=30)
        if end <= start:
            raise InvalidInput("pickup_slot_end must be after pickup_slot_start", code="invalid_slot")
        slot = (start, end)
    _check_fulfilment(fulfilment, loc, origin, slot)
    lines = _lines(data.get("lines"))
    customer = data.get("customer")
    address = data.get("shipping_address")
    if fulfilment in ("ship", "ship_from_store", "store_delivery") and address is not None:
        address = json.dumps(address)
    now = utcnow()
    order_id = new_id()
    try:
        with state.begin() as conn:
            priced: list[dict[str, Any]] = []
            currency: str | None = None
            for line_no, (sku, qty, given) in enumerate(lines, start=1):
                unit, cur = price_for(conn, sku, channel)
                if given is not None:
                    unit = given
                    cur = currency_code(data.get("currency", cur))
                if currency is not None and cur != currency:
                    raise InvalidInput("all lines of an order must have one currency", code="mixed_currencies")
                currency = cur
                priced.append(
                    {
                        "order_id": order_id,
                        "line_no": line_no,
                        "sku": sku,
                        "quantity": qty,
                        "unit_price_minor": unit,
                        "returned_quantity": 0,
                        "reservation_id": None,
                    }
                )
            assert currency is not None
            total = sum(p["unit_price_minor"] * p["quantity"] for p in priced)
            conn.execute(
                orders.insert().values(
                    id=order_id,
                    idempotency_key=key,
                    channel=channel,
                    fulfilment=fulfilment,
                    location_id=loc.id,
                    origin_location_id=origin.id if origin else None,
                    customer_key=customer,
                    status="placed",
                    currency=currency,
                    total_minor=total,
                    refunded_minor=0,
                    pickup_slot_start=slot[0] if slot else None,
                    pickup_slot_end=slot[1] if slot else None,
                    pickup_deadline=None,
                    shipping_address=address if isinstance(address, str) else None,
                    placed_at=now,
                    updated_at=now,
                )
            )
            for line in priced:
                if not reserve_units(conn, loc.id, line["sku"], line["quantity"]):
                    raise InsufficientStock(f"fewer than {line['quantity']} units of {line['sku']} at {loc.id}")
                line["reservation_id"] = new_id()
                conn.execute(
                    reservations.insert().values(
                        id=line["reservation_id"],
                        location_id=loc.id,
                        sku=line["sku"],
                        quantity=line["quantity"],
                        status="active",
                        expires_at=None,
                        order_id=order_id,
                        customer_key=customer,
                        idempotency_key=None,
                        created_at=now,
                        updated_at=now,
                    )
                )
            conn.execute(order_lines.insert(), priced)
            conn.execute(order_history.insert().values(order_id=order_id, status="placed", at=now, note=None))
            view = _order_view(conn, order_id)
            props = _order_props(view) | {"revenue": major(total, currency)}
            if slot:
                props["pickup_slot_start"] = slot[0].isoformat()
                props["pickup_slot_end"] = slot[1].isoformat()
            publish(conn, journal, [track("Order Placed", customer, EVENT_CHANNEL[channel], props, at=now)])
    except IntegrityError:
        if key is None:
            raise
        existing = _by_key(state, str(key))
        if existing is None:
            raise
        return get_order(state, existing)
    return view


def transition(
    state: sa.Engine, journal: Journal, order_id: str, status: str, note: str | None = None
) -> dict[str, Any]:
    """Move an order to STATUS if the lifecycle allows it, with its stock effects and event, in one transaction.
    Picked up / shipped sells the held units; cancelled / expired gives them back. Repeating the current status
    is a no-op (safe retries)."""
    if status not in TRANSITIONS:
        raise InvalidInput(f"status must be one of {', '.join(TRANSITIONS)}", code="invalid_status")
    now = utcnow()
    with state.begin() as conn:
        current = conn.execute(sa.select(orders).where(orders.c.id == order_id)).first()
        if current is None:
            raise NotFound(f"no order {order_id}", code="unknown_order")
        if current.status == status:
            return _order_view(conn, order_id)
        allowed = [s for s, nexts in TRANSITIONS.items() if status in nexts]
        if status == "ready_for_pickup" and current.fulfilment != "pickup":
            raise Conflict("only pickup orders become ready for pickup", code="invalid_transition")
        if status == "shipped" and current.fulfilment == "pickup":
            raise Conflict("pickup orders are picked up, not shipped", code="invalid_transition")
        values: dict[str, Any] = {"status": status, "updated_at": now}
        if status == "ready_for_pickup":
            loc = get_location(state, current.location_id)
            base = max(now, current.pickup_slot_end or now)
            values["pickup_deadline"] = base + timedelta(hours=loc.pickup_hold_hours)
        moved = conn.execute(
            orders.update().where(orders.c.id == order_id, orders.c.status.in_(allowed)).values(**values)
        ).rowcount
        if not moved:
            raise Conflict(
                f"order {order_id} is {current.status}; it cannot become {status}", code="invalid_transition"
            )
        holds = list(
            conn.execute(
                sa.select(order_lines.c.reservation_id).where(
                    order_lines.c.order_id == order_id, order_lines.c.reservation_id.is_not(None)
                )
            ).scalars()
        )
        if status in ("picked_up", "shipped"):
            end_reservations(conn, journal, holds, "consumed")
        elif status in ("cancelled", "expired"):
            end_reservations(conn, journal, holds, "released" if status == "cancelled" else "expired")
        conn.execute(order_history.insert().values(order_id=order_id, status=status, at=now, note=note))
        view = _order_view(conn, order_id)
        props = _order_props(view)
        if status == "ready_for_pickup":
            props["pickup_deadline"] = values["pickup_deadline"].isoformat()
        if status in ("ready_for_pickup", "picked_up", "expired"):
            channel = location_channel(view["location_id"])
        else:
            channel = EVENT_CHANNEL[view["channel"]]
        publish(conn, journal, [track(STATUS_EVENTS[status], view["customer_key"], channel, props, at=now)])
    return view


def expire_uncollected(state: sa.Engine, journal: Journal, now: datetime | None = None, limit: int = 200) -> int:
    """Expire pickup orders not collected by their deadline, giving their stock back. Returns how many."""
    now = now or utcnow()
    with state.connect() as conn:
        due = list(
            conn.execute(
                sa.select(orders.c.id)
                .where(orders.c.status == "ready_for_pickup", orders.c.pickup_deadline <= now)
                .limit(limit)
            ).scalars()
        )
    done = 0
    for order_id in due:
        try:
            transition(state, journal, order_id, "expired", note="not collected by the pickup deadline")
            done += 1
        except Conflict:
            continue  # picked up meanwhile
    return done


def return_order(state: sa.Engine, journal: Journal, order_id: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """Return some or all units of a fulfilled order in any channel (e.g. an online order at a store): refund at
    the price paid, put the units back on hand at the returning location (unless restock is false), and emit
    `Order Returned` and `Order Refunded` (negative revenue, so revenue follows) in one transaction.

    DATA: location_id (where it comes back), channel, lines [{sku, quantity}] (default: everything not yet
    returned), restock (default true), idempotency_key."""
    key = data.get("idempotency_key")
    if key is not None:
        with state.connect() as conn:
            done = conn.execute(sa.select(order_returns).where(order_returns.c.idempotency_key == key)).first()
        if done is not None:
            return _return_view(done)
    channel = sales_channel(str(data.get("channel", "store")))
    order = get_order(state, order_id)
    loc = get_location(state, str(data.get("location_id") or order["location_id"]))
    if order["status"] not in ("picked_up", "delivered", "shipped", "returned"):
        raise Conflict(
            f"order {order_id} is {order['status']}; only fulfilled orders can be returned", code="not_returnable"
        )
    restock = data.get("restock", True)
    if not isinstance(restock, bool):
        raise InvalidInput("restock must be true or false", code="invalid_return")
    wanted: dict[str, int] = {}
    if data.get("lines"):
        for sku, qty, _ in _lines(data["lines"]):
            wanted[sku] = wanted.get(sku, 0) + qty
    else:
        for ln in order["lines"]:
            if ln["quantity"] > ln["returned_quantity"]:
                wanted[ln["sku"]] = wanted.get(ln["sku"], 0) + ln["quantity"] - ln["returned_quantity"]
        if not wanted:
            raise Conflict(f"everything in order {order_id} was already returned", code="already_returned")
    now = utcnow()
    return_id = new_id()
    currency = order["currency"]
    try:
        with state.begin() as conn:
            returned: list[dict[str, Any]] = []
            for sku, qty in wanted.items():
                left = qty
                for ln in order["lines"]:
                    if ln["sku"] != sku or left == 0:
                        continue
                    take = min(left, ln["quantity"] - ln["returned_quantity"])
                    if take <= 0:
                        continue
                    # conditional: two returns racing for the same units cannot both take them
                    ok = conn.execute(
                        order_lines.update()
                        .where(
                            order_lines.c.order_id == order_id,
                            order_lines.c.line_no == ln["line_no"],
                            order_lines.c.quantity - order_lines.c.returned_quantity >= take,
                        )
                        .values(returned_quantity=order_lines.c.returned_quantity + take)
                    ).rowcount
                    if not ok:
                        raise Conflict("these units were returned meanwhile", code="already_returned")
                    returned.append(
                        {
                            "sku": sku,
                            "quantity": take,
                            "refund_minor": take * ln["unit_price_minor"],
                            "unit_price_minor": ln["unit_price_minor"],
                        }
                    )
                    left -= take
                if left:
                    raise Conflict(f"order {order_id} has no {qty} unreturned units of {sku}", code="not_returnable")
            refund = sum(r["refund_minor"] for r in returned)
            if restock:
                for r in returned:
                    before, after = change_level(conn, loc.id, r["sku"], on_hand_delta=r["quantity"], now=now)
                    record_movement(conn, loc.id, r["sku"], "return", r["quantity"], "customer return", order_id)
                    back_in_stock(conn, journal, loc.id, r["sku"], before, after)
            remaining = conn.execute(
                sa.select(sa.func.sum(order_lines.c.quantity - order_lines.c.returned_quantity)).where(
                    order_lines.c.order_id == order_id
                )
            ).scalar_one()
            values: dict[str, Any] = {"refunded_minor": orders.c.refunded_minor + refund, "updated_at": now}
            if not remaining:
                values["status"] = "returned"
            conn.execute(orders.update().where(orders.c.id == order_id).values(**values))
            conn.execute(
                order_history.insert().values(
                    order_id=order_id,
                    status="returned" if not remaining else "partially_returned",
                    at=now,
                    note=f"return {return_id} at {loc.id}",
                )
            )
            row = {
                "id": return_id,
                "idempotency_key": key,
                "order_id": order_id,
                "location_id": loc.id,
                "channel": channel,
                "refund_minor": refund,
                "currency": currency,
                "lines": json.dumps(returned),
                "at": now,
            }
            conn.execute(order_returns.insert().values(**row))
            products = [
                {"sku": r["sku"], "quantity": r["quantity"], "price": major(r["unit_price_minor"], currency)}
                for r in returned
            ]
            common = {
                "order_id": order_id,
                "return_id": return_id,
                "store_id": loc.id,
                "order_store_id": order["location_id"],
                "sales_channel": order["channel"],
                "currency": currency,
                "products": products,
                "restocked": restock,
            }
            ev_channel = EVENT_CHANNEL[channel]
            publish(
                conn,
                journal,
                [
                    track(
                        "Order Returned", order["customer_key"], ev_channel, common | {"refund_minor": refund}, at=now
                    ),
                    track(
                        "Order Refunded",
                        order["customer_key"],
                        ev_channel,
                        common
                        | {
                            "refund_minor": refund,
                            "total": major(refund, currency),
                            "revenue": major(-refund, currency) if refund else 0,
                        },
                        at=now,
                    ),
                ],
            )
    except IntegrityError:
        if key is None:
            raise
        with state.connect() as conn:
            done = conn.execute(sa.select(order_returns).where(order_returns.c.idempotency_key == key)).first()
        if done is None:
            raise
        return _return_view(done)
    return _return_view(_Row(row))


class _Row:
    def __init__(self, data: Mapping[str, Any]) -> None:
        self.__dict__.update(data)


def _return_view(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "order_id": row.order_id,
        "location_id": row.location_id,
        "channel": row.channel,
        "refund_minor": row.refund_minor,
        "currency": row.currency,
        "lines": json.loads(row.lines),
        "at": row.at,
    }


def orders_for(
    state: sa.Engine,
    customer_keys: Sequence[str],
    location_id: str | None = None,
    statuses: Sequence[str] | None = None,
    fulfilment: str | None = None,
) -> list[dict[str, Any]]:
    """Orders of a customer (any of their identifier keys), newest first, optionally at one location."""
    if not customer_keys:
        return []
    query = sa.select(orders.c.id).where(orders.c.customer_key.in_(list(customer_keys)))
    if location_id:
        query = query.where(orders.c.location_id == location_id)
    if statuses:
        query = query.where(orders.c.status.in_(list(statuses)))
    if fulfilment:
        query = query.where(orders.c.fulfilment == fulfilment)
    with state.connect() as conn:
        ids = list(conn.execute(query.order_by(orders.c.placed_at.desc())).scalars())
        return [_order_view(conn, i) for i in ids]


def store_orders(
    state: sa.Engine, location_id: str, statuses: Sequence[str] = OPEN_PICKUP, limit: int = 200
) -> list[dict[str, Any]]:
    """A store's orders in the given statuses (default: open pickups), oldest first."""
    with state.connect() as conn:
        ids = list(
            conn.execute(
                sa.select(orders.c.id)
                .where(orders.c.location_id == location_id, orders.c.status.in_(list(statuses)))
                .order_by(orders.c.placed_at)
                .limit(limit)
            ).scalars()
        )
        return [_order_view(conn, i) for i in ids]
