"""`accord commerce`: load stores and catalog, change and count stock, ask what is nearby."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from accord.cli.main import app as cli


def _run(home: Path, state_url: str, *args: str) -> str:
    env = {"ACCORD_HOME": str(home), "ACCORD_STATE_URL": state_url}
    result = CliRunner().invoke(cli, ["commerce", *args], env=env)
    assert result.exit_code == 0, result.output
    return result.output


def test_cli_stock_and_availability(tmp_path: Path, state_url: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "stores.json").write_text(
        json.dumps(
            [
                {
                    "store_id": "s-1",
                    "name": "One",
                    "kind": "store",
                    "country": "PL",
                    "city": "Warsaw",
                    "lat": 52.23,
                    "lon": 21.01,
                    "timezone": "Europe/Warsaw",
                    "opening_hours": {"mon": ["09:00", "21:00"]},
                    "pickup": True,
                    "geofence_m": 100,
                },
            ]
        )
    )
    (data / "catalog.csv").write_text("sku,name,category,price,currency,seasonal\nAC-1,Mug,Home,19.99,PLN,\n")
    home = tmp_path / "home"
    loaded = json.loads(_run(home, state_url, "load", str(data)))
    assert loaded == {"locations": 1, "products": 1, "stock_levels": 1}
    _run(home, state_url, "stock", "s-1", "AC-1", "--count", "4")
    level = json.loads(_run(home, state_url, "stock", "s-1", "AC-1", "--delta", "3", "--format", "json"))
    assert level["on_hand"] == 7
    found = json.loads(
        _run(home, state_url, "availability", "AC-1", "--lat", "52.2", "--lon", "21", "--format", "json")
    )
    assert [(f["location_id"], f["atp"]) for f in found] == [("s-1", 7)]
    accuracy = json.loads(_run(home, state_url, "accuracy", "--format", "json"))
    assert accuracy["counts"] == 1
    env = {"ACCORD_HOME": str(home), "ACCORD_STATE_URL": state_url}
    bad = CliRunner().invoke(cli, ["commerce", "stock", "nowhere", "AC-1", "--delta", "1"], env=env)
    assert bad.exit_code == 1 and "unknown_location" in bad.output
