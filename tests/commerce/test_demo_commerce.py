"""The demo retailer's stores, catalog and stock load into commerce, and the app can ask what is nearby."""

from __future__ import annotations

from pathlib import Path

from accord.commerce import demo, inventory, service
from accord.demo.generator import DemoSpec, generate
from accord.platform import Platform


def test_demo_stores_catalog_and_stock(platform: Platform, tmp_path: Path) -> None:
    out = tmp_path / "demo"
    generate(DemoSpec(customers=20, days=14, seed=3), out)
    counts = demo.load(platform.state, out)
    assert counts["locations"] == 19 and counts["products"] == 320
    assert demo.load(platform.state, out) == counts  # loading twice changes nothing
    warsaw = service.store(platform.state, "st-waw-01")
    assert warsaw["timezone"] == "Europe/Warsaw" and warsaw["opening_hours"]["sun"] is None and warsaw["pickup"]
    product = service.catalog.get_product(platform.state, service.catalog.skus(platform.state, limit=1)[0])
    assert product["prices"]["web"]["price_minor"] < product["price_minor"]  # cheaper online
    nearby = inventory.availability(platform.state, product["sku"], 52.23, 21.01, limit=3)
    assert nearby and all(n["atp"] > 0 and n["kind"] == "store" for n in nearby)
    assert [n["distance_m"] for n in nearby] == sorted(n["distance_m"] for n in nearby)
