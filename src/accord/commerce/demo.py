"""Load the demo retailer's stores, catalog and (deterministic) stock levels, and give some customers orders."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from accord.collect.journal import Journal
from accord.commerce import catalog, inventory, locations, orders
from accord.commerce.errors import CommerceError
from accord.commerce.tables import stock_levels
from accord.storage import utcnow

ONLINE_DISCOUNT = 0.95  # the same product is a little cheaper on the web and in the app


def load(state: sa.Engine, directory: Path, seed: int = 42) -> dict[str, int]:
    """Upsert DIRECTORY/stores.json and catalog.csv, then give every location demo stock (same seed, same stock)."""
    stores = json.loads((directory / "stores.json").read_text(encoding="utf-8"))
    items: list[dict[str, Any]] = []
    for s in stores:
        items.append(
            {
                "id": s["store_id"],
                "name": s["name"],
                "kind": s["kind"],
                "country": s.get("country"),
                "city": s.get("city"),
                "lat": s.get("lat"),
                "lon": s.get("lon"),
                "timezone": s["timezone"],
                "locale": s.get("locale"),
                "currency": s.get("currency"),
                "opening_hours": s.get("opening_hours") or {},
                "pickup": bool(s.get("pickup")),
                "geofence_m": int(s.get("geofence_m") or 0),
                "appointment_capacity": 2 if s["kind"] == "store" else 0,
            }
        )
    locations.upsert_locations(state, items)
    products: list[dict[str, Any]] = []
    with open(directory / "catalog.csv", encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            base = catalog.to_minor(row["price"], row["currency"])
            online = int(base * ONLINE_DISCOUNT)
            products.append(
                {
                    "sku": row["sku"],
                    "name": row["name"],
                    "category": row["category"],
                    "price_minor": base,
                    "currency": row["currency"],
                    "seasonal": row.get("seasonal") or "",
                    "prices": {
                        "web": {"price_minor": online, "currency": row["currency"]},
                        "app": {"price_minor": online, "currency": row["currency"]},
                    },
                }
            )
    catalog.upsert_products(state, products)
    rng = random.Random(seed)
    now = utcnow()
    rows: list[dict[str, Any]] = []
    for s in stores:
        for p in products:
            if s["kind"] == "warehouse":
                on_hand = rng.randint(50, 500)
            elif s["kind"] == "online":
                on_hand = rng.randint(0, 40)
            else:
                on_hand = rng.choice((0, 0, 1, 2, 3, 5, 8, 12)) if rng.random() < 0.7 else 0
            rows.append(
                {
                    "location_id": s["store_id"],
                    "sku": p["sku"],
                    "on_hand": on_hand,
                    "reserved": 0,
                    "safety_stock": 1 if s["kind"] == "store" and on_hand > 5 else 0,
                    "updated_at": now,
                }
            )
    with state.begin() as conn:
        conn.execute(stock_levels.delete().where(stock_levels.c.location_id.in_([s["store_id"] for s in stores])))
        conn.execute(stock_levels.insert(), rows)
    return {"locations": len(items), "products": len(products), "stock_levels": len(rows)}


def activity(
    state: sa.Engine, journal: Journal, directory: Path, customers: int = 60, seed: int = 42
) -> dict[str, int]:
    """Give demo customers commerce stories of their own (stories 13, 14, 17): app and web pickup orders at a store
    in their country (some ready, some collected, one returned in a store), a web order shipped and returned at a
    store, back-in-stock subscriptions. Everything goes through the service functions, so every step is an event on
    their timelines. Deterministic for a seed (the order ids differ from run to run)."""
    rng = random.Random(seed)
    stores = json.loads((directory / "stores.json").read_text(encoding="utf-8"))
    pickup_by_country: dict[str, list[str]] = {}
    for s in stores:
        if s["kind"] == "store" and s.get("pickup"):
            pickup_by_country.setdefault(s["country"], []).append(s["store_id"])
    people: list[tuple[str, str]] = []
    with open(directory / "customers.csv", encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            email = row["email"].strip().lower()
            if email and row["country"] in pickup_by_country:
                people.append((f"email:{email}", row["country"]))
            if len(people) >= customers:
                break
    with state.connect() as conn:
        skus = [r[0] for r in conn.execute(sa.select(stock_levels.c.sku).distinct().order_by(stock_levels.c.sku))]
    counts = {"orders": 0, "ready": 0, "picked_up": 0, "returns": 0, "subscriptions": 0, "skipped": 0}
    for n, (customer, country) in enumerate(people):
        store_id = rng.choice(pickup_by_country[country])
        sku = _in_stock(state, store_id, skus, rng)
        if sku is None:
            counts["skipped"] += 1
            continue
        try:
            order = orders.place_order(
                state,
                journal,
                {
                    "channel": rng.choice(("app", "web")),
                    "fulfilment": "pickup",
                    "location_id": store_id,
                    "customer": customer,
                    "lines": [{"sku": sku, "quantity": 1}],
                    "idempotency_key": f"demo-{seed}-{n}",
                },
            )
        except CommerceError:
            counts["skipped"] += 1
            continue
        counts["orders"] += 1
        step = n % 4
        if step >= 1:
            orders.transition(state, journal, order["id"], "picking")
            orders.transition(state, journal, order["id"], "ready_for_pickup")
            counts["ready"] += 1
        if step >= 2:
            orders.transition(state, journal, order["id"], "picked_up")
            counts["picked_up"] += 1
        if step == 3 and n % 8 == 3:
            orders.return_order(state, journal, order["id"], {"location_id": store_id, "channel": "store"})
            counts["returns"] += 1
        if n % 5 == 0:
            sold_out = _sold_out(state, store_id, skus, rng)
            if sold_out is not None:
                inventory.subscribe_back_in_stock(state, sold_out, customer, store_id)
                counts["subscriptions"] += 1
    return counts


def _in_stock(state: sa.Engine, store_id: str, skus: list[str], rng: random.Random) -> str | None:
    for _ in range(20):
        sku = rng.choice(skus)
        if inventory.stock_level(state, store_id, sku)["atp"] > 0:
            return sku
    return None


def _sold_out(state: sa.Engine, store_id: str, skus: list[str], rng: random.Random) -> str | None:
    for _ in range(20):
        sku = rng.choice(skus)
        if inventory.stock_level(state, store_id, sku)["atp"] == 0:
            return sku
    return None
