"""The commerce HTTP API (bearer token): locations and pings, catalog, stock, availability, reservations, orders,
returns, store pickup screen, appointments."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import date, datetime
from typing import Any, TypeVar

import msgspec
from litestar import Controller, Request, get, post, put
from litestar.params import FromPath, FromQuery, JSONBody

from accord.api.admin import ApiError
from accord.commerce import service as commerce
from accord.commerce.desk import ReservationDesk
from accord.commerce.errors import CommerceError, NotFound
from accord.loyalty.service import LoyaltyError
from accord.platform import Platform
from accord.profiles import service as profiles

T = TypeVar("T")
SWEEP_SECONDS = 30.0


class PingIn(msgspec.Struct):
    """Where a customer's device is (identifier TYPE:VALUE)."""

    identifier: str
    lat: float
    lon: float
    channel: str = "app"


class ReservationIn(msgspec.Struct):
    """Hold units at a location."""

    location_id: str
    sku: str
    quantity: int = 1
    ttl_seconds: int = 900
    customer: str | None = None
    idempotency_key: str | None = None


class StockChangeIn(msgspec.Struct):
    """A receipt/adjustment (delta), a cycle count (counted) or a safety stock."""

    delta: int | None = None
    counted: int | None = None
    safety_stock: int | None = None
    reason: str | None = None


class SubscriptionIn(msgspec.Struct):
    """Tell CUSTOMER once when SKU is back (at LOCATION_ID, or anywhere)."""

    sku: str
    customer: str
    location_id: str | None = None


class StatusIn(msgspec.Struct):
    """The order's next status."""

    status: str
    note: str | None = None


class AppointmentIn(msgspec.Struct):
    """Book a service slot."""

    location_id: str
    starts_at: datetime
    service: str = "consultation"
    customer: str | None = None
    idempotency_key: str | None = None


class HoursExceptionIn(msgspec.Struct):
    """Special hours on one local date (null = closed)."""

    hours: list[str] | None = None


def _platform(request: Request[Any, Any, Any]) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


def _customer(platform: Platform, identifier: str | None) -> str | None:
    if identifier is None:
        return None
    try:
        return profiles.parse_identifier(identifier, platform.rules)
    except profiles.InvalidIdentifier as exc:
        raise ApiError(400, "invalid_identifier", str(exc)) from exc


async def _run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    try:
        return await asyncio.to_thread(fn, *args, **kwargs)
    except CommerceError as exc:
        raise ApiError(exc.status, exc.code, exc.message) from exc


def store_customer(platform: Platform, store_id: str, customer_key: str) -> dict[str, Any]:
    """The store-associate lookup (story 15): who the customer is, their points, the offers they hold and can use at
    this store now (each with why and the message that delivered it), and their pickup orders waiting here."""
    store = commerce.store(platform.state, store_id)
    profile_id = profiles.resolve(platform.state, platform.rules, customer_key)
    if profile_id is None:
        raise NotFound(f"no customer holds {customer_key}", code="unknown_customer")
    view = profiles.profile_view(platform.state, platform.events, profile_id) or {}
    traits = {k: v.get("value") if isinstance(v, dict) else v for k, v in (view.get("traits") or {}).items()}
    try:
        points: dict[str, Any] | None = platform.loyalty.account(profile_id)
        points_note = None
    except LoyaltyError as exc:
        points, points_note = None, exc.message
    return {
        "store": {"id": store["id"], "name": store.get("name"), "timezone": store.get("timezone")},
        "customer": {
            "profile_id": profile_id,
            "identifiers": view.get("identifiers", []),
            "name": " ".join(str(traits[k]) for k in ("first_name", "last_name") if traits.get(k)) or None,
            "locale": traits.get("locale"),
        },
        "points": points,
        "points_note": points_note,
        "offers": platform.offers.active_offers(profile_id, store_id, "store"),
        "pickup_orders": commerce.open_pickup_orders(platform.state, profile_id, store_id),
    }


def reserve_args(platform: Platform, data: ReservationIn, key: str | None) -> tuple[Any, ...]:
    """The reservation desk's arguments for a request (customer identifier normalised)."""
    return (data.location_id, data.sku, data.quantity, data.ttl_seconds, _customer(platform, data.customer), key)


def _key(request: Request[Any, Any, Any], body_key: str | None) -> str | None:
    return body_key or request.headers.get("idempotency-key")


class CommerceController(Controller):
    """Everything commerce under /api/v1."""

    path = "/api/v1"
    tags = ["commerce"]

    @get("/locations", summary="Stores, warehouses and the online centre")
    async def locations(
        self, request: Request[Any, Any, Any], kind: FromQuery[str | None] = None
    ) -> list[dict[str, Any]]:
        found = await _run(commerce.locations.list_locations, _platform(request).state, kind)
        return [loc.as_dict() for loc in found]

    @post("/locations", summary="Create or replace locations (a list)", status_code=200)
    async def upsert_locations(
        self, request: Request[Any, Any, Any], data: JSONBody[list[dict[str, Any]]]
    ) -> dict[str, int]:
        return {"written": await _run(commerce.locations.upsert_locations, _platform(request).state, data)}

    @get("/locations/{location_id:str}", summary="One location: time zone, opening hours, pickup, geofence")
    async def location(self, request: Request[Any, Any, Any], location_id: FromPath[str]) -> dict[str, Any]:
        return await _run(commerce.store, _platform(request).state, location_id)

    @put("/locations/{location_id:str}/exceptions/{day:str}", summary="Special hours or closure on a local date")
    async def hours_exception(
        self,
        request: Request[Any, Any, Any],
        location_id: FromPath[str],
        day: FromPath[str],
        data: JSONBody[HoursExceptionIn],
    ) -> dict[str, Any]:
        loc = await _run(commerce.locations.set_hours_exception, _platform(request).state, location_id, day, data.hours)
        return loc.as_dict()

    @post(
        "/locations/ping", summary="A device's position: Store Entered / Store Exited, pickup arrivals", status_code=200
    )
    async def ping(self, request: Request[Any, Any, Any], data: JSONBody[PingIn]) -> dict[str, Any]:
        platform = _platform(request)
        key = _customer(platform, data.identifier)
        return await _run(
            commerce.presence.ping, platform.state, platform.journal, key, data.lat, data.lon, data.channel
        )

    @post("/catalog", summary="Create or replace products (a list)", status_code=200)
    async def upsert_products(
        self, request: Request[Any, Any, Any], data: JSONBody[list[dict[str, Any]]]
    ) -> dict[str, int]:
        return {"written": await _run(commerce.catalog.upsert_products, _platform(request).state, data)}

    @get("/catalog/{sku:str}", summary="A product with its base and channel prices (minor units)")
    async def product(self, request: Request[Any, Any, Any], sku: FromPath[str]) -> dict[str, Any]:
        return await _run(commerce.catalog.get_product, _platform(request).state, sku)

    @get("/stock/{location_id:str}/{sku:str}", summary="On hand, reserved, safety stock and ATP")
    async def stock(
        self, request: Request[Any, Any, Any], location_id: FromPath[str], sku: FromPath[str]
    ) -> dict[str, Any]:
        return await _run(commerce.inventory.stock_level, _platform(request).state, location_id, sku)

    @post(
        "/stock/{location_id:str}/{sku:str}",
        summary="Receive/adjust (delta), count (counted) or safety stock",
        status_code=200,
    )
    async def change_stock(
        self,
        request: Request[Any, Any, Any],
        location_id: FromPath[str],
        sku: FromPath[str],
        data: JSONBody[StockChangeIn],
    ) -> dict[str, Any]:
        p = _platform(request)
        given = [x for x in (data.delta, data.counted, data.safety_stock) if x is not None]
        if len(given) != 1:
            raise ApiError(400, "invalid_input", "give exactly one of delta, counted, safety_stock")
        if data.delta is not None:
            reason = data.reason or "adjustment"
            return await _run(commerce.inventory.adjust, p.state, p.journal, location_id, sku, data.delta, reason)
        if data.counted is not None:
            return await _run(commerce.inventory.cycle_count, p.state, p.journal, location_id, sku, data.counted)
        assert data.safety_stock is not None
        return await _run(commerce.inventory.set_safety_stock, p.state, p.journal, location_id, sku, data.safety_stock)

    @get("/inventory/accuracy", summary="Inventory record and unit accuracy from cycle counts")
    async def accuracy(
        self, request: Request[Any, Any, Any], location_id: FromQuery[str | None] = None
    ) -> dict[str, Any]:
        return await _run(commerce.inventory.inventory_accuracy, _platform(request).state, location_id)

    @get("/availability", summary="Locations that have a SKU, nearest first, with distance and ATP")
    async def availability(
        self,
        request: Request[Any, Any, Any],
        sku: FromQuery[str],
        lat: FromQuery[float],
        lon: FromQuery[float],
        limit: FromQuery[int] = 5,
        radius_km: FromQuery[float | None] = None,
        kind: FromQuery[str] = "store",
    ) -> dict[str, Any]:
        kinds = tuple(k.strip() for k in kind.split(",") if k.strip())
        try:  # one indexed read of well under a millisecond: answered inline, without a thread hop
            found = commerce.availability(_platform(request).state, sku, lat, lon, limit, kinds, radius_km)
        except CommerceError as exc:
            raise ApiError(exc.status, exc.code, exc.message) from exc
        return {"sku": sku, "locations": found}

    @post("/reservations", summary="Hold units (409 insufficient_stock when ATP is short)", status_code=201)
    async def reserve(self, request: Request[Any, Any, Any], data: JSONBody[ReservationIn]) -> dict[str, Any]:
        p = _platform(request)
        args = reserve_args(p, data, _key(request, data.idempotency_key))
        desk: ReservationDesk | None = getattr(request.app.state, "commerce_desk", None)
        try:
            if desk is not None:  # group commit: many concurrent reservations share one transaction
                held = await asyncio.wrap_future(desk.submit(*args))
            else:
                held = await asyncio.to_thread(commerce.reserve, p.state, p.journal, *args)
        except CommerceError as exc:
            raise ApiError(exc.status, exc.code, exc.message) from exc
        return held.as_dict()

    @get("/reservations/{reservation_id:str}", summary="One reservation")
    async def reservation(self, request: Request[Any, Any, Any], reservation_id: FromPath[str]) -> dict[str, Any]:
        found = await _run(commerce.inventory.get_reservation, _platform(request).state, reservation_id)
        return found.as_dict()

    @post("/reservations/{reservation_id:str}/release", summary="Give the units back", status_code=200)
    async def release(self, request: Request[Any, Any, Any], reservation_id: FromPath[str]) -> dict[str, Any]:
        p = _platform(request)
        return (await _run(commerce.inventory.release, p.state, p.journal, reservation_id)).as_dict()

    @post("/back-in-stock", summary="Subscribe to a back-in-stock notice", status_code=201)
    async def subscribe(self, request: Request[Any, Any, Any], data: JSONBody[SubscriptionIn]) -> dict[str, Any]:
        p = _platform(request)
        key = _customer(p, data.customer)
        return await _run(commerce.subscribe_back_in_stock, p.state, data.sku, key, data.location_id)

    @post("/orders", summary="Place an order (holds stock; Idempotency-Key honoured)", status_code=201)
    async def place_order(self, request: Request[Any, Any, Any], data: JSONBody[dict[str, Any]]) -> dict[str, Any]:
        p = _platform(request)
        body = dict(data)
        body["customer"] = _customer(p, body.get("customer"))
        body["idempotency_key"] = _key(request, body.get("idempotency_key"))
        return await _run(commerce.place_order, p.state, p.journal, body)

    @get("/orders/{order_id:str}", summary="One order with lines and history")
    async def order(self, request: Request[Any, Any, Any], order_id: FromPath[str]) -> dict[str, Any]:
        return await _run(commerce.get_order, _platform(request).state, order_id)

    @post("/orders/{order_id:str}/status", summary="Move an order to its next status", status_code=200)
    async def order_status(
        self, request: Request[Any, Any, Any], order_id: FromPath[str], data: JSONBody[StatusIn]
    ) -> dict[str, Any]:
        p = _platform(request)
        return await _run(commerce.transition, p.state, p.journal, order_id, data.status, data.note)

    @post("/orders/{order_id:str}/returns", summary="Return units in any channel and location", status_code=201)
    async def order_return(
        self, request: Request[Any, Any, Any], order_id: FromPath[str], data: JSONBody[dict[str, Any]]
    ) -> dict[str, Any]:
        p = _platform(request)
        body = dict(data)
        body["idempotency_key"] = _key(request, body.get("idempotency_key"))
        return await _run(commerce.return_order, p.state, p.journal, order_id, body)

    @get(
        "/store/{store_id:str}/customer",
        summary="Store-associate lookup by identifier (TYPE:VALUE): customer, points, offers usable here, pickups",
        description="404 unknown_customer or not_found (store); 400 invalid_identifier.",
    )
    async def store_customer(
        self, request: Request[Any, Any, Any], store_id: FromPath[str], identifier: FromQuery[str]
    ) -> dict[str, Any]:
        p = _platform(request)
        key = _customer(p, identifier)
        assert key is not None
        return await _run(store_customer, p, store_id, key)

    @get("/customers/orders", summary="Orders of the customer holding an identifier (TYPE:VALUE)")
    async def customer_orders(
        self, request: Request[Any, Any, Any], identifier: FromQuery[str]
    ) -> list[dict[str, Any]]:
        p = _platform(request)
        key = _customer(p, identifier)
        assert key is not None
        return await _run(commerce.customer_orders, p.state, key)

    @get("/stores/{store_id:str}/pickups", summary="Open pickup orders at a store (optionally one profile's)")
    async def pickups(
        self, request: Request[Any, Any, Any], store_id: FromPath[str], profile_id: FromQuery[str | None] = None
    ) -> list[dict[str, Any]]:
        state = _platform(request).state
        if profile_id:
            return await _run(commerce.open_pickup_orders, state, profile_id, store_id)
        return await _run(commerce.orders.store_orders, state, store_id)

    @get("/stores/{store_id:str}/tasks", summary="The store's tasks, e.g. pickup customers walking in")
    async def tasks(
        self, request: Request[Any, Any, Any], store_id: FromPath[str], status: FromQuery[str | None] = "open"
    ) -> list[dict[str, Any]]:
        return await _run(commerce.presence.store_tasks, _platform(request).state, store_id, status)

    @post("/stores/{store_id:str}/tasks/{task_id:str}/done", summary="Mark a store task done", status_code=200)
    async def task_done(
        self, request: Request[Any, Any, Any], store_id: FromPath[str], task_id: FromPath[str]
    ) -> dict[str, Any]:
        return await _run(commerce.presence.complete_task, _platform(request).state, store_id, task_id)

    @get("/locations/{location_id:str}/appointment-slots", summary="Free appointment slots inside opening hours")
    async def appointment_slots(
        self,
        request: Request[Any, Any, Any],
        location_id: FromPath[str],
        day: FromQuery[date],
        days: FromQuery[int] = 1,
    ) -> list[dict[str, Any]]:
        return await _run(commerce.appointments.slots, _platform(request).state, location_id, day, days)

    @post("/appointments", summary="Book a slot (409 slot_full / slot_outside_hours)", status_code=201)
    async def book(self, request: Request[Any, Any, Any], data: JSONBody[AppointmentIn]) -> dict[str, Any]:
        p = _platform(request)
        return await _run(
            commerce.appointments.book,
            p.state,
            p.journal,
            data.location_id,
            data.starts_at,
            data.service,
            _customer(p, data.customer),
            _key(request, data.idempotency_key),
        )

    @post("/appointments/{appointment_id:str}/cancel", summary="Cancel an appointment", status_code=200)
    async def cancel(self, request: Request[Any, Any, Any], appointment_id: FromPath[str]) -> dict[str, Any]:
        p = _platform(request)
        return await _run(commerce.appointments.cancel, p.state, p.journal, appointment_id)

    @post("/commerce/sweep", summary="Release expired holds and expire uncollected pickups now", status_code=200)
    async def sweep(self, request: Request[Any, Any, Any]) -> dict[str, int]:
        p = _platform(request)
        return await _run(commerce.sweep, p.state, p.journal)


@contextlib.asynccontextmanager
async def commerce_runtime(app: Any, platform: Platform, every: float = SWEEP_SECONDS) -> AsyncIterator[None]:
    """While the server runs: the reservation desk (group-committed reservations) and the housekeeping loop
    (expired holds, uncollected pickups)."""

    async def loop() -> None:
        while True:
            await asyncio.sleep(every)
            with contextlib.suppress(Exception):
                await asyncio.to_thread(commerce.sweep, platform.state, platform.journal)

    desk = ReservationDesk(platform.state, platform.journal).start()
    app.state.commerce_desk = desk
    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await asyncio.to_thread(desk.stop)
