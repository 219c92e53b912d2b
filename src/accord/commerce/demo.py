"""Load the demo retailer's stores, catalog and (deterministic) stock levels into the commerce tables."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from accord.commerce import catalog, locations
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
