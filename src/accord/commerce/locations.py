"""Stores, warehouses and the online fulfilment centre: coordinates, time zone, hours, pickup, geofence."""

from __future__ import annotations

import json
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from accord.commerce.errors import InvalidInput, NotFound
from accord.commerce.geo import GeoIndex, Point
from accord.commerce.hours import OpeningHours
from accord.commerce.tables import locations
from accord.storage import utcnow

KINDS = ("store", "warehouse", "online")
CACHE_SECONDS = 5.0


@dataclass(frozen=True)
class Location:
    """One location as the other domains and faces see it."""

    id: str
    name: str
    kind: str
    country: str | None
    city: str | None
    lat: float | None
    lon: float | None
    timezone: str
    locale: str | None
    currency: str | None
    hours: OpeningHours
    pickup: bool
    ship_from_store: bool
    geofence_m: int
    pickup_hold_hours: int
    appointment_capacity: int
    appointment_minutes: int

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready view (opening hours as local 'HH:MM' per weekday, exceptions by local date)."""
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "country": self.country,
            "city": self.city,
            "lat": self.lat,
            "lon": self.lon,
            "timezone": self.timezone,
            "locale": self.locale,
            "currency": self.currency,
            "opening_hours": self.hours.weekly_json(),
            "hours_exceptions": self.hours.exceptions_json(),
            "pickup": self.pickup,
            "ship_from_store": self.ship_from_store,
            "geofence_m": self.geofence_m,
            "pickup_hold_hours": self.pickup_hold_hours,
            "appointment_capacity": self.appointment_capacity,
            "appointment_minutes": self.appointment_minutes,
        }


def _from_row(row: Any) -> Location:
    return Location(
        id=row.id,
        name=row.name,
        kind=row.kind,
        country=row.country,
        city=row.city,
        lat=row.lat,
        lon=row.lon,
        timezone=row.timezone,
        locale=row.locale,
        currency=row.currency,
        hours=OpeningHours.from_json(row.timezone, row.opening_hours, row.hours_exceptions),
        pickup=bool(row.pickup),
        ship_from_store=bool(row.ship_from_store),
        geofence_m=int(row.geofence_m),
        pickup_hold_hours=int(row.pickup_hold_hours),
        appointment_capacity=int(row.appointment_capacity),
        appointment_minutes=int(row.appointment_minutes),
    )


@dataclass
class _Directory:
    checked_at: float
    version: tuple[Any, ...]
    by_id: dict[str, Location]
    index: GeoIndex
    by_kinds: dict[tuple[str, ...], GeoIndex] = field(default_factory=dict)


_directories: weakref.WeakKeyDictionary[sa.Engine, _Directory] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def _version(conn: sa.Connection) -> tuple[Any, ...]:
    return tuple(conn.execute(sa.select(sa.func.count(), sa.func.max(locations.c.updated_at))).one())


def _load(state: sa.Engine) -> _Directory:
    with state.connect() as conn:
        version = _version(conn)
        by_id = {row.id: _from_row(row) for row in conn.execute(sa.select(locations))}
    index = GeoIndex(
        Point(loc.id, loc.lat, loc.lon, loc.geofence_m)
        for loc in by_id.values()
        if loc.lat is not None and loc.lon is not None
    )
    return _Directory(time.monotonic(), version, by_id, index)


def _current(state: sa.Engine) -> _Directory:
    cached = _directories.get(state)
    now = time.monotonic()
    if cached is not None and now - cached.checked_at < CACHE_SECONDS:
        return cached
    if cached is not None:  # cheap check: reload only when a location changed (maybe in another process)
        with state.connect() as conn:
            if _version(conn) == cached.version:
                cached.checked_at = now
                return cached
    with _lock:
        fresh = _load(state)
        _directories[state] = fresh
    return fresh


def directory(state: sa.Engine) -> tuple[dict[str, Location], GeoIndex]:
    """All locations and their geo index, cached per engine (refreshed after writes, checked every few seconds)."""
    current = _current(state)
    return current.by_id, current.index


def geo_index(state: sa.Engine, kinds: tuple[str, ...]) -> tuple[dict[str, Location], GeoIndex]:
    """All locations and a geo index of those of KINDS (cached like `directory`)."""
    current = _current(state)
    index = current.by_kinds.get(kinds)
    if index is None:
        index = GeoIndex(p for p in current.index.points if current.by_id[p.location_id].kind in kinds)
        current.by_kinds[kinds] = index
    return current.by_id, index


def forget(state: sa.Engine) -> None:
    """Drop the cached directory (after a location changed)."""
    _directories.pop(state, None)


def get_location(state: sa.Engine, location_id: str) -> Location:
    """One location (NotFound if unknown)."""
    by_id, _ = directory(state)
    found = by_id.get(location_id)
    if found is None:
        forget(state)  # maybe created by another process a moment ago
        found = directory(state)[0].get(location_id)
    if found is None:
        raise NotFound(f"no location {location_id!r}", code="unknown_location")
    return found


def _bool(data: Mapping[str, Any], key: str, default: bool) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise InvalidInput(f"{key} must be true or false", code="invalid_location")
    return value


def _int(data: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = data.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidInput(f"{key} must be a whole number in [{low}, {high}]", code="invalid_location")
    return value


def _values(data: Mapping[str, Any]) -> dict[str, Any]:
    loc_id = data.get("id") or data.get("store_id")
    if not isinstance(loc_id, str) or not loc_id.strip() or len(loc_id) > 64:
        raise InvalidInput("a location needs an id (1-64 characters)", code="invalid_location")
    kind = data.get("kind", "store")
    if kind not in KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(KINDS)}", code="invalid_location")
    lat, lon = data.get("lat"), data.get("lon")
    if (lat is None) != (lon is None):
        raise InvalidInput("give both lat and lon, or neither", code="invalid_location")
    if lat is not None:
        if not isinstance(lat, int | float) or not isinstance(lon, int | float):
            raise InvalidInput("lat and lon must be numbers", code="invalid_location")
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise InvalidInput("lat must be in [-90, 90] and lon in [-180, 180]", code="invalid_location")
    timezone = data.get("timezone")
    if not isinstance(timezone, str):
        raise InvalidInput("a location needs its IANA time zone (e.g. Europe/Warsaw)", code="invalid_location")
    weekly = data.get("opening_hours") or {}
    exceptions = data.get("hours_exceptions") or {}
    if not isinstance(weekly, dict) or not isinstance(exceptions, dict):
        raise InvalidInput("opening_hours and hours_exceptions must be objects", code="invalid_hours")
    hours = OpeningHours.parse(timezone, weekly, exceptions)
    currency = data.get("currency")
    if currency is not None and (not isinstance(currency, str) or len(currency) != 3):
        raise InvalidInput("currency must be an ISO 4217 code", code="invalid_location")
    return {
        "id": loc_id.strip(),
        "name": str(data.get("name") or loc_id),
        "kind": kind,
        "country": data.get("country"),
        "city": data.get("city"),
        "lat": float(lat) if lat is not None else None,
        "lon": float(lon) if lon is not None else None,
        "timezone": timezone,
        "locale": data.get("locale"),
        "currency": currency.upper() if isinstance(currency, str) else None,
        "opening_hours": json.dumps(hours.weekly_json()),
        "hours_exceptions": json.dumps(hours.exceptions_json()),
        "pickup": _bool(data, "pickup", False),
        "ship_from_store": _bool(data, "ship_from_store", kind == "store"),
        "geofence_m": _int(data, "geofence_m", 0, 0, 50_000),
        "pickup_hold_hours": _int(data, "pickup_hold_hours", 72, 1, 24 * 60),
        "appointment_capacity": _int(data, "appointment_capacity", 0, 0, 1000),
        "appointment_minutes": _int(data, "appointment_minutes", 30, 5, 24 * 60),
        "updated_at": utcnow(),
    }


def upsert_locations(state: sa.Engine, items: Sequence[Mapping[str, Any]]) -> int:
    """Create or replace locations (validated; all or nothing). Returns how many were written."""
    rows = [_values(item) for item in items]
    with state.begin() as conn:
        for row in rows:
            updated = conn.execute(locations.update().where(locations.c.id == row["id"]).values(**row)).rowcount
            if not updated:
                conn.execute(locations.insert().values(**row))
    forget(state)
    return len(rows)


def set_hours_exception(state: sa.Engine, location_id: str, day: str, hours: list[str] | None) -> Location:
    """Close a location on a local date (HOURS None) or give it special hours that day."""
    loc = get_location(state, location_id)
    exceptions = {**loc.hours.exceptions_json(), day: hours}
    parsed = OpeningHours.parse(loc.timezone, loc.hours.weekly_json(), exceptions)
    with state.begin() as conn:
        conn.execute(
            locations.update()
            .where(locations.c.id == location_id)
            .values(hours_exceptions=json.dumps(parsed.exceptions_json()), updated_at=utcnow())
        )
    forget(state)
    return get_location(state, location_id)


def list_locations(state: sa.Engine, kind: str | None = None) -> list[Location]:
    """All locations (optionally of one kind), by id."""
    forget(state)
    by_id, _ = directory(state)
    return [loc for _, loc in sorted(by_id.items()) if kind is None or loc.kind == kind]
