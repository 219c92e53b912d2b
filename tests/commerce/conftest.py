"""Commerce fixtures: a few stores around Warsaw and London, a catalog, stock."""

from __future__ import annotations

import json
from typing import Any

import pytest

from accord.commerce import catalog, locations
from accord.platform import Platform

ALL_WEEK = {d: ["00:00", "23:59"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
SHOP_HOURS = {d: ["09:00", "21:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat")} | {"sun": None}

STORES: list[dict[str, Any]] = [
    {
        "id": "waw-centrum",
        "name": "Warszawa Centrum",
        "lat": 52.2297,
        "lon": 21.0122,
        "timezone": "Europe/Warsaw",
        "opening_hours": ALL_WEEK,
        "pickup": True,
        "geofence_m": 150,
        "appointment_capacity": 2,
        "currency": "PLN",
    },
    {
        "id": "waw-mokotow",
        "name": "Warszawa Mokotów",
        "lat": 52.1806,
        "lon": 21.0027,
        "timezone": "Europe/Warsaw",
        "opening_hours": SHOP_HOURS,
        "pickup": True,
        "geofence_m": 200,
        "currency": "PLN",
    },
    {
        "id": "krk-rynek",
        "name": "Kraków Rynek",
        "lat": 50.0617,
        "lon": 19.9373,
        "timezone": "Europe/Warsaw",
        "opening_hours": SHOP_HOURS,
        "pickup": False,
        "geofence_m": 150,
        "currency": "PLN",
    },
    {
        "id": "lon-oxford",
        "name": "London Oxford Street",
        "lat": 51.5152,
        "lon": -0.1419,
        "timezone": "Europe/London",
        "opening_hours": SHOP_HOURS,
        "pickup": True,
        "geofence_m": 120,
        "currency": "GBP",
    },
    {
        "id": "wh-1",
        "name": "Warehouse",
        "kind": "warehouse",
        "lat": 51.9,
        "lon": 19.6,
        "timezone": "Europe/Warsaw",
        "opening_hours": ALL_WEEK,
    },
    {"id": "online", "name": "Online", "kind": "online", "timezone": "Europe/Warsaw", "opening_hours": ALL_WEEK},
]

PRODUCTS: list[dict[str, Any]] = [
    {
        "sku": "BOOK-1",
        "name": "The Book",
        "category": "Books",
        "price_minor": 5999,
        "currency": "PLN",
        "prices": {"web": {"price_minor": 4999, "currency": "PLN"}},
    },
    {"sku": "LAMP-1", "name": "Table Lamp", "category": "Home", "price_minor": 19900, "currency": "PLN"},
]


def seed(platform: Platform) -> None:
    """Stores and products (no stock)."""
    locations.upsert_locations(platform.state, STORES)
    catalog.upsert_products(platform.state, PRODUCTS)


@pytest.fixture
def shop(platform: Platform) -> Platform:
    seed(platform)
    return platform


def events_named(platform: Platform, name: str) -> list[dict[str, Any]]:
    """Processed events with that name (drains the journal first)."""
    assert platform.processor.drain()
    rows = platform.events.query(
        "SELECT raw, channel, revenue_minor, store_id, profile_id FROM events WHERE event = ? ORDER BY journal_seq",
        [name],
    )
    return [
        json.loads(raw) | {"_channel": ch, "_revenue_minor": rev, "_store_id": st, "_profile_id": pid}
        for raw, ch, rev, st, pid in rows
    ]
