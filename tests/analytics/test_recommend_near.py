"""Story 22: recommendations filtered to what a store near the customer has in stock (commerce's availability)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from accord.analytics import service
from accord.cli.analytics import in_stock_near
from accord.commerce import inventory, locations
from accord.config import load_settings
from accord.platform import Platform, open_platform

from .conftest import event_rows


@pytest.fixture
def plat(tmp_path: Path) -> Iterator[Platform]:
    platform = open_platform(load_settings({"ACCORD_HOME": str(tmp_path / "home")}))
    yield platform
    platform.close()


def test_only_products_in_stock_nearby_are_recommended(plat: Platform) -> None:
    rows, skus = [], []
    for u in range(40):  # two tastes; P1 has met A only
        for sku in (["A"] if u == 1 else ["A", "B", "C"]) if u % 2 else ["X", "Y", "Z"]:
            rows.append((f"c{u}@P{u}", len(rows) / 1000, "web", "Product Viewed", None, None))
            skus.append(sku)
    table = event_rows(rows)
    raw = [json.dumps({"properties": {"sku": sku}}) for sku in skus]
    plat.events.load(table.set_column(table.schema.get_field_index("raw"), "raw", pa.array(raw)), 1, [])
    locations.upsert_locations(
        plat.state,
        [{"id": "waw", "name": "Warszawa", "lat": 52.2297, "lon": 21.0122, "timezone": "Europe/Warsaw"},
         {"id": "gdn", "name": "Gdansk", "lat": 54.352, "lon": 18.6466, "timezone": "Europe/Warsaw"}],
    )  # fmt: skip
    inventory.adjust(plat.state, plat.journal, "waw", "C", 3)
    inventory.adjust(plat.state, plat.journal, "gdn", "B", 5)  # 280 km away
    anywhere = service.recommendations_from_store(plat.events, "P1", k=2)
    assert {r["item"] for r in anywhere["items"]} == {"B", "C"}
    near = service.recommendations_from_store(
        plat.events, "P1", k=2, where_in_stock=in_stock_near(plat.state, "52.23,21.01", 25.0)
    )
    assert [r["item"] for r in near["items"]] == ["C"]
    assert near["items"][0]["in_stock_at"]["location_id"] == "waw" and near["items"][0]["in_stock_at"]["atp"] == 3
