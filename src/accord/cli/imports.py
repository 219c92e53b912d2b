"""`accord import`: load files from offline channels (JSONL events, CRM customers, POS receipts).

Sends through the running server when there is one (HTTP /v1/import with the source's write key), else writes
to the local journal and processes it into the event store before exiting. Exit code 0 when every row was
imported, 2 when some rows were rejected (listed in the rejects file), 1 on errors.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from accord.cli.context import api_result, console, err_console, fail, local_platform, running_server, settings
from accord.collect.errors import CollectError
from accord.collect.importers import (
    BoundedSink,
    CustomerColumns,
    ImportFailed,
    ImportFileError,
    ImportReport,
    OrderColumns,
    import_customers,
    import_events,
    import_orders,
)
from accord.collect.importers.columns import parse_pairs
from accord.collect.imports import HttpSink, ImportSink, JournalSink, ProcessJournalSink
from accord.collect.segment import SourceInfo
from accord.collect.sources import ensure_source

app = typer.Typer(
    name="import",
    help="Import files from offline channels: Segment events (JSONL), CRM customers and POS receipts (CSV). "
    "Re-importing a file adds nothing; bad rows go to FILE.rejects.csv. Exit code 2 when rows were rejected.",
    no_args_is_help=True,
)

EXIT_REJECTED = 2
DRAIN_TIMEOUT = 3600.0
PIPELINE_BYTES = 4 << 20  # files from about 4 MB (~50,000 POS rows) import with a helper process
Importer = Callable[[ImportSink, Callable[[int], None]], ImportReport]


class Format(StrEnum):
    """Output format."""

    text = "text"
    json = "json"


FORMAT = typer.Option(Format.text, "--format", help="Output format (json: a summary for scripts, no progress bar).")
REJECTS = typer.Option(None, "--rejects", help="Where to write rejected rows (default: FILE.rejects.csv).")
TIMEZONE = typer.Option(None, "--timezone", help="IANA time zone for times without a UTC offset, e.g. Europe/Warsaw.")


@app.command("events")
def events(
    file: Path = typer.Argument(..., help="JSONL file: one Segment message (JSON object) per line."),
    source: str = typer.Option("file-import-events", "--source", help="Source to import as (created if missing)."),
    channel: str = typer.Option("auto", "--channel", help="Default channel of the source when it is created."),
    rejects: Path | None = REJECTS,
    fmt: Format = FORMAT,
) -> None:
    """Import Segment messages from a JSONL file (messageIds are kept, so re-imports add nothing)."""
    _run(
        "events",
        file,
        source,
        channel,
        fmt,
        lambda sink, progress: import_events(file, sink, rejects_path=rejects, progress=progress),
    )


@app.command("customers")
def customers(
    file: Path = typer.Argument(..., help="CRM export CSV with a header row, one customer per row."),
    source: str = typer.Option("crm-import", "--source", help="Source to import as (created if missing)."),
    channel: str = typer.Option("other", "--channel", help="Default channel of the source when it is created."),
    id_col: str | None = typer.Option(None, "--id-col", help="Column of the customer id (default: customer_id)."),
    email_col: str | None = typer.Option(None, "--email-col", help="Column of the email (default: email)."),
    phone_col: str | None = typer.Option(None, "--phone-col", help="Column of the phone (default: phone)."),
    card_col: str | None = typer.Option(None, "--card-col", help="Column of the loyalty card (default: loyalty_card)."),
    time_col: str | None = typer.Option(
        None, "--time-col", help="Column of the record's time (default: updated_at, else created_at)."
    ),
    maps: list[str] | None = typer.Option(
        None, "--map", help="TRAIT=COLUMN: import COLUMN as trait TRAIT (repeatable)."
    ),
    timezone: str | None = TIMEZONE,
    rejects: Path | None = REJECTS,
    fmt: Format = FORMAT,
) -> None:
    """Import a CRM export: one identify per row, linking customer id, email, phone and loyalty card."""
    try:
        mapping = CustomerColumns(id_col, email_col, phone_col, card_col, time_col, parse_pairs(maps, "trait"))
    except ImportFileError as exc:
        raise fail(str(exc)) from exc
    _run(
        "customers",
        file,
        source,
        channel,
        fmt,
        lambda sink, progress: import_customers(
            file, sink, mapping, rejects_path=rejects, timezone=timezone, progress=progress
        ),
    )


@app.command("orders")
def orders(
    file: Path = typer.Argument(..., help="POS receipts CSV with a header row, one row per line item."),
    source: str = typer.Option("pos-import", "--source", help="Source to import as (created if missing)."),
    channel: str = typer.Option("store", "--channel", help="Channel of the orders (and of the source if created)."),
    order_col: str | None = typer.Option(None, "--order-col", help="Column of the order id (default: order_id)."),
    store_col: str | None = typer.Option(None, "--store-col", help="Column of the store id (default: store_id)."),
    time_col: str | None = typer.Option(None, "--time-col", help="Column of the order time (default: ordered_at)."),
    card_col: str | None = typer.Option(None, "--card-col", help="Column of the loyalty card (default: loyalty_card)."),
    email_col: str | None = typer.Option(None, "--email-col", help="Column of the email (default: email)."),
    phone_col: str | None = typer.Option(None, "--phone-col", help="Column of the phone (default: phone)."),
    maps: list[str] | None = typer.Option(
        None,
        "--map",
        help="FIELD=COLUMN for any field: order_id, store_id, ordered_at, loyalty_card, email, phone, sku, "
        "quantity, unit_price, currency, country (repeatable).",
    ),
    country: str | None = typer.Option(
        None, "--country", help="Country (ISO 3166 alpha-2) for national phone numbers when the row has none."
    ),
    stores: Path | None = typer.Option(
        None, "--stores", help="JSON list of stores with store_id and country (e.g. the demo's stores.json)."
    ),
    timezone: str | None = TIMEZONE,
    rejects: Path | None = REJECTS,
    fmt: Format = FORMAT,
) -> None:
    """Import POS receipts: each order becomes one "Order Completed" event with its products and revenue."""
    chosen = {
        "order_id": order_col,
        "store_id": store_col,
        "ordered_at": time_col,
        "loyalty_card": card_col,
        "email": email_col,
        "phone": phone_col,
    }
    try:
        pairs = {k: v for k, v in chosen.items() if v is not None} | parse_pairs(maps, "field")
        mapping = OrderColumns.from_pairs(pairs)
        store_countries = _store_countries(stores) if stores else None
    except ImportFileError as exc:
        raise fail(str(exc)) from exc
    _run(
        "orders",
        file,
        source,
        channel,
        fmt,
        lambda sink, progress: import_orders(
            file,
            sink,
            mapping,
            channel,
            rejects_path=rejects,
            timezone=timezone,
            country=country,
            store_countries=store_countries,
            progress=progress,
        ),
    )


def _store_countries(path: Path) -> dict[str, str]:
    """store_id -> country from a JSON list of stores (or a {store_id: country} object)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ImportFileError(f"cannot read the stores file {path}: {exc}") from exc
    if isinstance(data, dict):
        return {str(k): str(v) for k, v in data.items() if v}
    if isinstance(data, list):
        return {
            str(s["store_id"]): str(s["country"])
            for s in data
            if isinstance(s, dict) and s.get("store_id") and s.get("country")
        }
    raise ImportFileError(f"{path}: expected a JSON list of stores with store_id and country")


def _run(kind: str, file: Path, source: str, channel: str, fmt: Format, importer: Importer) -> None:
    """Find the way in (server or local stores), import with a progress bar, print the summary, exit."""
    if not file.is_file():
        raise fail(f"file not found: {file}" if not file.exists() else f"{file} is not a file")
    s = settings()
    client = running_server(s)
    processed: bool | None = None
    try:
        if client is not None:
            with client:
                key = _server_source(client, source, channel)
                report = _import(importer, BoundedSink(HttpSink(client, key)), file, fmt)
            via = "server"
        else:
            with local_platform(s) as platform:
                try:
                    src = ensure_source(platform.state, source, channel)
                except CollectError as exc:
                    raise fail(exc.message) from exc
                info = SourceInfo(src.id, src.channel)
                if file.stat().st_size >= PIPELINE_BYTES:  # big file: validate and commit in a helper process
                    with ProcessJournalSink(s.state_url, info) as sink:
                        report = _import(importer, sink, file, fmt)
                else:
                    report = _import(importer, JournalSink(platform.journal, info), file, fmt)
                with _status("loading events into the event store", fmt):
                    processed = platform.processor.drain(timeout=DRAIN_TIMEOUT)
            via = "local"
    except ImportFileError as exc:
        raise fail(str(exc)) from exc
    except ImportFailed as exc:
        _summary(kind, exc.report, source, "server" if client else "local", None, fmt)
        raise fail(str(exc)) from exc
    except httpx.HTTPError as exc:
        raise fail(f"cannot reach the server: {exc}") from exc
    _summary(kind, report, source, via, processed, fmt)
    if processed is False:
        err_console.print(
            "[yellow]warning:[/] not every event is in the event store yet; they are safe in the journal "
            "and load when the server runs (`accord serve`)"
        )
    if report.rejected_rows:
        raise typer.Exit(EXIT_REJECTED)


def _server_source(client: httpx.Client, name: str, channel: str) -> str:
    """The write key of source NAME on the running server (created with CHANNEL if missing)."""
    for item in api_result(client.get("/api/v1/sources")):
        if item.get("name") == name:
            return str(item["write_key"])
    response = client.post("/api/v1/sources", json={"name": name, "channel": channel})
    if response.status_code == 409:  # created meanwhile by someone else
        return _server_source(client, name, channel)
    return str(api_result(response)["write_key"])


def _import(importer: Importer, sink: ImportSink, file: Path, fmt: Format) -> ImportReport:
    if fmt is Format.json:
        return importer(sink, lambda done: None)
    total = _count_rows(file)
    with Progress(
        TextColumn("importing {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task(file.name, total=total)
        report = importer(sink, lambda done: bar.update(task, completed=min(done, total) if total else done))
    return report


def _count_rows(file: Path) -> int | None:
    """Lines in the file, less a header for CSV (the bar's total; an estimate when fields span lines)."""
    try:
        lines = 0
        last = b"\n"
        with open(file, "rb") as fh:
            while block := fh.read(1 << 20):
                lines += block.count(b"\n")
                last = block[-1:]
        lines += last != b"\n"
    except OSError:
        return None
    return max(lines - (file.suffix.lower() != ".jsonl"), 0)


@contextmanager
def _status(message: str, fmt: Format) -> Iterator[None]:
    if fmt is Format.json:
        yield
        return
    with err_console.status(message):
        yield


def _summary(kind: str, report: ImportReport, source: str, via: str, processed: bool | None, fmt: Format) -> None:
    data: dict[str, Any] = {**report.as_dict(), "source": source, "via": via, "processed": processed}
    if fmt is Format.json:
        console.print_json(json.dumps(data))
        return
    unit = "orders" if kind == "orders" else "messages"
    console.print(
        f"[bold]{report.path.name}[/]: {report.rows:,} rows, {report.messages:,} {unit} "
        f"[dim](source {source}, via {'the running server' if via == 'server' else 'the local stores'})[/]"
    )
    console.print(
        f"  accepted {report.accepted:,}, duplicates {report.duplicates:,}, rejected {report.rejected_messages:,} "
        f"({report.rejected_rows:,} rows); {report.seconds:.1f} s, {report.rows_per_second:,.0f} rows/s"
    )
    if report.rejected_rows:
        codes = ", ".join(f"{code} {n:,}" for code, n in sorted(report.reject_codes.items(), key=lambda x: -x[1]))
        console.print(f"[yellow]{report.rejected_rows:,} rows rejected[/] ({codes}); see {report.rejects_path}")
