"""`accord demo`: generate the synthetic omnichannel retailer, load it, and serve it."""

from __future__ import annotations

import contextlib
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


DEMO_HOLDOUT_PERCENT = 10.0


def generate_files(
    customers: int, days: int, seed: int, out: Path, holdout_percent: float = DEMO_HOLDOUT_PERCENT
) -> dict[str, Any]:
    """Write the demo retailer's files to OUT with a progress bar; returns the counts. HOLDOUT_PERCENT of each
    campaign's targets get no message (the holdouts the scorecard's lift is measured on)."""
    from accord.demo.generator import DemoSpec, generate

    with _progress() as progress:
        task = progress.add_task("generating customers", total=customers)
        result = generate(
            DemoSpec(customers=customers, days=days, seed=seed, holdout_percent=holdout_percent),
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
        summary["commerce"]["activity"] = commerce_demo.activity(platform.state, platform.journal, directory)
        summary.update(process_and_finish(platform, directory))
    return summary


DEMO_SLICE_MESSAGES = 50_000  # messages per processing slice: fewer identity-change passes over the event store


def process_and_finish(platform: Any, directory: Path) -> dict[str, Any]:
    """Resolve identities and load the imported events (the event store in its bulk mode, larger slices), then
    the campaign history, the example segments, the example loyalty program with the history's points, and the
    journey library. Resumes where an interrupted load
    stopped: the processor continues from the event store's cursor."""
    from accord.journeys import service as journeys_service
    from accord.segments import service as segments
    from accord.segments.engines import DuckDBEngine

    summary: dict[str, Any] = {}
    started = time.perf_counter()
    processor = platform.processor
    processor.batch_messages = max(processor.batch_messages, DEMO_SLICE_MESSAGES)
    total = processor.lag()
    bulk = getattr(platform.events, "bulk_load", None)
    with bulk() if bulk is not None else contextlib.nullcontext(), _progress() as progress:
        task = progress.add_task("resolving identities and loading events", total=total)
        while processor.run_once():
            progress.update(task, completed=total - processor.lag())
        processor.sync_identity()
    summary["processing_seconds"] = round(time.perf_counter() - started, 2)
    summary["campaigns"] = _load_campaigns(platform, directory)
    applied = segments.apply_examples(platform.state, DuckDBEngine(platform.events), platform.journal)
    processor.drain()  # the Segment Entered events
    summary["segments"] = {r["name"]: r["size"] for r in applied}
    summary["loyalty"] = _loyalty(platform)
    journeys_service.skip_to(platform.state, platform.events.cursors()[0])  # history does not trigger journeys
    summary["journeys"] = [j["name"] for j in journeys_service.apply_library(platform.state)]
    summary["stats"] = platform.stats()
    return summary


def _loyalty(platform: Any) -> dict[str, Any]:
    """The example loyalty program and rewards, then the history's points as if the program had run all along:
    every past purchase earns, dated at the purchase; points older than the expiry have expired, dated at their
    expiry; returns take theirs back; tiers follow. Their timeline events are loaded before journeys skip ahead."""
    from accord.loyalty.examples import apply_example
    from accord.loyalty.history import backfill

    summary: dict[str, Any] = apply_example(platform.loyalty)
    with _progress() as progress:
        task = progress.add_task("earning points for past purchases", total=None)
        report = backfill(
            platform.loyalty,
            platform.events,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
        progress.update(task, description="loading the points' timeline events")
        platform.processor.drain()
    summary["backfill"] = {k: v for k, v in report.items() if k not in ("since", "until")}
    return summary


def _load_campaigns(platform: Any, directory: Path) -> dict[str, Any]:
    """The demo's campaign history: each email/SMS/push campaign as a broadcast already sent, with its holdout
    (messaging's broadcast groups, what `accord analyze lift --broadcast` and the scorecard measure), and the ad
    spend (`accord analyze spend import`). Targets are matched to profiles by their user id."""
    import csv
    from collections import defaultdict
    from datetime import datetime

    from accord.analytics import service as analytics
    from accord.identity import queries as identity
    from accord.messaging.broadcasts import record_past_broadcast

    out: dict[str, Any] = {}
    holdouts = directory / "holdouts.csv"
    if holdouts.exists():
        campaigns: dict[tuple[str, str, str], dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        profile_of: dict[str, str | None] = {}
        unmatched = 0
        with open(holdouts, encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                uid = row["user_id"]
                if uid not in profile_of:
                    pid = identity.profile_for_identifier(platform.state, f"user_id:{uid}")
                    profile_of[uid] = identity.current_profile(platform.state, pid) if pid else None
                pid = profile_of[uid]
                if pid is None:
                    unmatched += 1
                    continue
                campaigns[(row["campaign"], row["channel"], row["sent_at"])][row["group"]].append(pid)
        recorded = 0
        for (name, channel, sent_at), groups in sorted(campaigns.items(), key=lambda kv: kv[0][2]):
            at = datetime.fromisoformat(sent_at.replace("Z", "+00:00"))
            done = record_past_broadcast(
                platform.state, name, channel, at, groups.get("treated", []), groups.get("holdout", []), "demo"
            )
            recorded += bool(done["recorded"])
        out["broadcasts"] = recorded
        out["targets_without_profile"] = unmatched
    spend = directory / "ad_spend.csv"
    if spend.exists():
        out["ad_spend"] = analytics.import_spend_file(platform.state, spend)
    return out


@app.callback()
def demo(
    ctx: typer.Context,
    customers: int = typer.Option(10_000, min=10, help="Number of customers to generate."),
    days: int = typer.Option(365, min=7, help="Days of history."),
    seed: int = typer.Option(42, help="Random seed (same seed, same retailer)."),
    holdout_percent: float = typer.Option(
        DEMO_HOLDOUT_PERCENT, min=0, max=99, help="Share of each campaign's targets held out (no message)."
    ),
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
        counts = generate_files(customers, days, seed, out, holdout_percent)
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
    holdout_percent: float = typer.Option(
        DEMO_HOLDOUT_PERCENT, min=0, max=99, help="Share of each campaign's targets held out (no message)."
    ),
) -> None:
    """Write the demo retailer's files (stores, catalog, CRM, POS receipts, events, ground truth)."""
    counts = generate_files(customers, days, seed, out, holdout_percent)
    console.print_json(json.dumps(counts))


@app.command("load")
def load_command(directory: Path = typer.Argument(..., help="A directory written by `accord demo generate`.")) -> None:
    """Import a generated demo into the stores of ACCORD_HOME."""
    for name in ("customers.csv", "events.jsonl", "orders.csv"):
        if not (directory / name).exists():
            raise fail(f"{directory / name} is missing; run `accord demo generate --out {directory}` first")
    console.print_json(json.dumps(load_files(directory), default=str))
