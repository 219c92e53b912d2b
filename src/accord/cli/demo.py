"""`accord demo`: generate the synthetic omnichannel retailer, load it, and serve it."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from accord.cli.context import console, fail, local_platform, running_server, settings

app = typer.Typer(help="The demo retailer: generate it, load it, serve it.", invoke_without_command=True)

DEMO_SOURCES = {
    "customers": ("demo-crm", "other"),
    "events": ("demo-events", "auto"),
    "orders": ("demo-pos", "store"),
    "legacy": ("demo-legacy", "store"),
}


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    )


def generate_files(customers: int, days: int, seed: int, out: Path) -> dict[str, Any]:
    """Write the demo retailer's files to OUT with a progress bar; returns the counts."""
    from accord.demo.generator import DemoSpec, generate

    with _progress() as progress:
        task = progress.add_task("generating customers", total=customers)
        result = generate(
            DemoSpec(customers=customers, days=days, seed=seed),
            out,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    return dict(result.counts)


def load_files(directory: Path) -> dict[str, Any]:
    """Import the demo files (CRM customers, events, POS receipts) into the local stores and process them."""
    from accord.collect.importers import import_customers, import_events, import_orders
    from accord.collect.importers.customers import CustomerColumns
    from accord.collect.imports import JournalSink
    from accord.collect.segment import SourceInfo
    from accord.collect.sources import ensure_source
    from accord.journeys import service as journeys_service

    s = settings()
    if running_server(s) is not None:
        raise fail("stop the running server before loading the demo (the loader owns the stores while it runs)")
    summary: dict[str, Any] = {}
    with local_platform(s) as platform:
        stores = json.loads((directory / "stores.json").read_text(encoding="utf-8"))
        store_countries = {store["store_id"]: store["country"] for store in stores}
        steps: tuple[tuple[str, Any, Path, dict[str, Any]], ...] = (
            ("customers", import_customers, directory / "customers.csv", {}),
            ("events", import_events, directory / "events.jsonl", {}),
            ("orders", import_orders, directory / "orders.csv", {"store_countries": store_countries}),
            ("legacy", import_customers, directory / "legacy_customers.csv", {"mapping": CustomerColumns("legacy_id")}),
        )
        for kind, importer, path, options in steps:
            if kind == "legacy" and not path.exists():
                continue  # a demo generated before the legacy registry existed
            name, channel = DEMO_SOURCES[kind]
            source = ensure_source(platform.state, name, channel)
            sink = JournalSink(platform.journal, SourceInfo(source.id, source.channel))
            started = time.perf_counter()
            with _progress() as progress:
                task = progress.add_task(f"importing {path.name}", total=None)

                def advance(rows: int, task: TaskID = task, progress: Progress = progress) -> None:
                    progress.update(task, completed=rows)

                report = importer(path, sink, progress=advance, **options)
            summary[kind] = {
                "rows": report.rows,
                "accepted": report.accepted,
                "duplicates": report.duplicates,
                "rejected_rows": report.rejected_rows,
                "seconds": round(time.perf_counter() - started, 2),
            }
        from accord.commerce import demo as commerce_demo

        summary["commerce"] = commerce_demo.load(platform.state, directory)  # stores, catalog, demo stock levels
        started = time.perf_counter()
        total = platform.processor.lag()
        with _progress() as progress:
            task = progress.add_task("resolving identities and loading events", total=total)
            while platform.processor.run_once():
                progress.update(task, completed=total - platform.processor.lag())
        platform.processor.sync_identity()
        summary["processing_seconds"] = round(time.perf_counter() - started, 2)
        journeys_service.skip_to(platform.state, platform.events.cursors()[0])  # history does not trigger journeys
        summary["journeys"] = [j["name"] for j in journeys_service.apply_library(platform.state)]
        summary["stats"] = platform.stats()
    return summary


@app.callback()
def demo(
    ctx: typer.Context,
    customers: int = typer.Option(10_000, min=10, help="Number of customers to generate."),
    days: int = typer.Option(365, min=7, help="Days of history."),
    seed: int = typer.Option(42, help="Random seed (same seed, same retailer)."),
    serve: bool = typer.Option(True, help="Serve the platform after loading."),
) -> None:
    """Generate (10k customers by default), load and serve the demo retailer. Reuses a loaded demo."""
    if ctx.invoked_subcommand is not None:
        return
    s = settings()
    marker = s.home / "demo.json"
    if marker.exists():
        console.print(f"demo already loaded in {s.home} ({marker}); serving it")
    else:
        out = s.home / "demo-data"
        console.print(f"generating the demo retailer into {out}")
        counts = generate_files(customers, days, seed, out)
        summary = load_files(out)
        marker.write_text(json.dumps({"counts": counts, "load": summary}, indent=2, default=str))
        console.print_json(json.dumps(summary, default=str))
    if serve:
        from accord.cli.main import serve as serve_command

        serve_command(host=None, port=None)  # type: ignore[arg-type]


@app.command("generate")
def generate_command(
    customers: int = typer.Option(10_000, min=10, help="Number of customers."),
    days: int = typer.Option(365, min=7, help="Days of history."),
    seed: int = typer.Option(42, help="Random seed."),
    out: Path = typer.Option(Path("demo-data"), help="Output directory."),
) -> None:
    """Write the demo retailer's files (stores, catalog, CRM, POS receipts, events, ground truth)."""
    counts = generate_files(customers, days, seed, out)
    console.print_json(json.dumps(counts))


@app.command("load")
def load_command(directory: Path = typer.Argument(..., help="A directory written by `accord demo generate`.")) -> None:
    """Import a generated demo into the stores of ACCORD_HOME."""
    for name in ("customers.csv", "events.jsonl", "orders.csv"):
        if not (directory / name).exists():
            raise fail(f"{directory / name} is missing; run `accord demo generate --out {directory}` first")
    console.print_json(json.dumps(load_files(directory), default=str))
