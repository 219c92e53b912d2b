"""The commerce domain's public functions: what faces and other domains (messaging, journeys, the store screen) call."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from accord.collect.journal import Journal
from accord.commerce import appointments, catalog, inventory, locations, orders, presence
from accord.commerce.customers import keys_of_customer, keys_of_profile
from accord.commerce.errors import CommerceError, Conflict, InsufficientStock, InvalidInput, NotFound
from accord.commerce.inventory import availability, reserve, subscribe_back_in_stock
from accord.commerce.orders import OPEN_PICKUP, get_order, place_order, return_order, transition

__all__ = [
    "CommerceError",
    "Conflict",
    "InsufficientStock",
    "InvalidInput",
    "NotFound",
    "appointments",
    "availability",
    "catalog",
    "customer_orders",
    "get_order",
    "inventory",
    "keys_of_customer",
    "locations",
    "open_pickup_orders",
    "orders",
    "place_order",
    "presence",
    "reserve",
    "return_order",
    "store",
    "subscribe_back_in_stock",
    "sweep",
    "transition",
]


def store(state: sa.Engine, store_id: str) -> dict[str, Any]:
    """A location's facts for messaging and journeys: time zone, locale, currency, weekly opening hours (local
    'HH:MM') and dated exceptions, pickup capability, geofence. NotFound if unknown."""
    return locations.get_location(state, store_id).as_dict()


def open_pickup_orders(state: sa.Engine, profile_id: str, store_id: str) -> list[dict[str, Any]]:
    """The profile's pickup orders at STORE_ID that are not collected yet (placed, picking, ready), oldest first,
    matched through every identifier the profile holds (so merges are followed)."""
    keys = keys_of_profile(state, profile_id)
    found = orders.orders_for(state, keys, location_id=store_id, statuses=OPEN_PICKUP, fulfilment="pickup")
    return sorted(found, key=lambda o: o["placed_at"])


def customer_orders(state: sa.Engine, customer_key: str) -> list[dict[str, Any]]:
    """Every order of the customer holding CUSTOMER_KEY (through all their identifiers), newest first."""
    return orders.orders_for(state, keys_of_customer(state, customer_key))


def sweep(state: sa.Engine, journal: Journal) -> dict[str, int]:
    """Periodic housekeeping: release expired reservations, expire uncollected pickup orders."""
    return {
        "reservations_expired": inventory.release_expired(state, journal),
        "orders_expired": orders.expire_uncollected(state, journal),
    }
