"""`accord commerce ...`: locations, availability, stock changes and counts, orders, housekeeping.

Commerce lives in the state store only, so these commands open it directly (also beside a running server: the
events they emit go through the journal, which the server's processor loads)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.table import Table

from accord.cli.context import console, fail, settings
from accord.collect.journal import Journal
from accord.commerce import service as commerce
from accord.commerce.errors import CommerceError
from accord.storage import create_state_engine, migrate

app = typer.Typer(help="Stores, stock, availability and orders.", no_args_is_help=True)
T = TypeVar("T")
FORMAT = typer.Option("text", "--format", help="text or json")


@contextmanager
def _state() -> Iterator[tuple[Any, Journal]]:
    engine = create_state_engine(settings().state_url)
    try:
        migrate(engine)
        yield engine, Journal(engine)
    finally:
        engine.dispose()


def _call(fn: Callable[..., T], *args: Any) -> T:
    try:
        return fn(*args)
    except CommerceError as exc:
        raise fail(f"{exc.message} ({exc.code})") from exc


def _print(data: Any, fmt: str) -> None:
    console.print_json(json.dumps(data, default=str)) if fmt == "json" else console.print(data)


@app.command("locations")
def locations(kind: str = typer.Option(None, help="store, warehouse or online"), fmt: str = FORMAT) -> None:
    """List locations with time zone, pickup and geofence."""
    with _state() as (state, _):
        rows = [loc.as_dict() for loc in commerce.locations.list_locations(state, kind)]
    if fmt == "json":
        _print(rows, fmt)
        return
    table = Table("id", "name", "kind", "timezone", "pickup", "geofence m")
    for r in rows:
        table.add_row(
            r["id"], r["name"], r["kind"], r["timezone"], "yes" if r["pickup"] else "no", str(r["geofence_m"])
        )
    console.print(table)


@app.command("load")
def load(
    directory: Path = typer.Argument(..., exists=True, file_okay=False, help="Has stores.json and catalog.csv"),
) -> None:
    """Load stores.json and catalog.csv (the demo format) and give every location demo stock."""
    with _state() as (state, _):
        console.print_json(json.dumps(_call(commerce_demo_load, state, directory)))


def commerce_demo_load(state: Any, directory: Path) -> dict[str, int]:
    """The demo loader (imported lazily)."""
    from accord.commerce import demo

    return demo.load(state, directory)


@app.command("availability")
def availability(
    sku: str,
    lat: float = typer.Option(..., help="Latitude of the customer."),
    lon: float = typer.Option(..., help="Longitude of the customer."),
    limit: int = typer.Option(5, help="How many locations."),
    fmt: str = FORMAT,
) -> None:
    """Stores that have SKU, nearest first, with distance and ATP."""
    with _state() as (state, _):
        rows = _call(commerce.availability, state, sku, lat, lon, limit)
    if fmt == "json":
        _print(rows, fmt)
        return
    table = Table("location", "name", "km", "ATP", "pickup")
    for r in rows:
        table.add_row(r["location_id"], r["name"], f"{r['distance_m'] / 1000:.1f}", str(r["atp"]), str(r["pickup"]))
    console.print(table)


@app.command("stock")
def stock(
    location_id: str,
    sku: str,
    delta: int = typer.Option(None, help="Receive (+) or write off (-) units."),
    count: int = typer.Option(None, help="Record a cycle count: the units on the shelf."),
    safety: int = typer.Option(None, help="Set the safety stock."),
    fmt: str = FORMAT,
) -> None:
    """Show a stock level, or change it (one of --delta, --count, --safety)."""
    given = [x for x in (delta, count, safety) if x is not None]
    if len(given) > 1:
        raise fail("give at most one of --delta, --count, --safety")
    with _state() as (state, journal):
        if delta is not None:
            level = _call(commerce.inventory.adjust, state, journal, location_id, sku, delta)
        elif count is not None:
            level = _call(commerce.inventory.cycle_count, state, journal, location_id, sku, count)
        elif safety is not None:
            level = _call(commerce.inventory.set_safety_stock, state, journal, location_id, sku, safety)
        else:
            level = _call(commerce.inventory.stock_level, state, location_id, sku)
    _print(level, fmt)


@app.command("accuracy")
def accuracy(location_id: str = typer.Option(None, "--location", help="One location."), fmt: str = FORMAT) -> None:
    """Inventory record accuracy from cycle counts."""
    with _state() as (state, _):
        _print(commerce.inventory.inventory_accuracy(state, location_id), fmt)


@app.command("order")
def order(order_id: str, fmt: str = FORMAT) -> None:
    """One order with its lines and status history."""
    with _state() as (state, _):
        _print(_call(commerce.get_order, state, order_id), fmt)


@app.command("sweep")
def sweep(fmt: str = FORMAT) -> None:
    """Release expired reservations and expire uncollected pickup orders now (the server does it every 30 s)."""
    with _state() as (state, journal):
        _print(commerce.sweep(state, journal), fmt)
