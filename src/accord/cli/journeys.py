"""`accord journey`: apply definitions, start/pause/stop, stats, dry runs, tasks."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import typer
from rich.table import Table

from accord.cli.context import Format, api_result, console, fail, local_platform, running_server, settings
from accord.journeys import service as journeys
from accord.journeys.engine import Engine
from accord.journeys.errors import JourneyError
from accord.profiles import service as profiles
from accord.profiles.service import InvalidIdentifier
from accord.storage import create_state_engine, migrate

app = typer.Typer(help="Journeys: durable cross-channel customer journeys.", no_args_is_help=True)
FORMAT = typer.Option(Format.text, "--format", help="Output format.")


def _state() -> sa.Engine:
    """The state store (journeys live there; SQLite and PostgreSQL both take several processes)."""
    engine = create_state_engine(settings().state_url)
    migrate(engine)
    return engine


def _print(data: Any, fmt: Format) -> None:
    if fmt == "json":
        console.print_json(json.dumps(data, default=lambda v: v.isoformat() if isinstance(v, datetime) else str(v)))
    else:
        console.print(data)


def _run(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except JourneyError as exc:
        raise fail(exc.message) from exc


@app.command("apply")
def apply_cmd(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="Journey definition (YAML or JSON)."),
    start: bool = typer.Option(False, "--start", help="Start it (status active) as well."),
    fmt: Format = FORMAT,
) -> None:
    """Save a journey; a changed definition becomes a new version (running instances finish on theirs)."""
    result = _run(journeys.apply, _state(), file.read_text(encoding="utf-8"), start)
    if fmt == "json":
        _print(result, fmt)
    else:
        verb = "saved as version" if result["changed"] else "unchanged, version"
        console.print(f"journey [bold]{result['name']}[/]: {verb} {result['version']} ({result['status']})")


def _status(name: str, status: str, fmt: Format) -> None:
    result = _run(journeys.set_status, _state(), name, status)
    if fmt == "json":
        _print(result, fmt)
    else:
        console.print(f"journey [bold]{name}[/] is now {result['status']}")


@app.command("start")
def start_cmd(name: str, fmt: Format = FORMAT) -> None:
    """Start (or resume) a journey."""
    _status(name, "active", fmt)


@app.command("pause")
def pause_cmd(name: str, fmt: Format = FORMAT) -> None:
    """Pause a journey: instances stay where they are until it is started again."""
    _status(name, "paused", fmt)


@app.command("stop")
def stop_cmd(name: str, fmt: Format = FORMAT) -> None:
    """Stop a journey for good: running instances exit."""
    _status(name, "stopped", fmt)


@app.command("list")
def list_cmd(fmt: Format = FORMAT) -> None:
    """Every journey, its version, status and instances."""
    rows = journeys.list_journeys(_state())
    if fmt == "json":
        _print(rows, fmt)
        return
    table = Table("name", "version", "status", "active", "completed", "exited")
    for r in rows:
        i = r["instances"]
        counts = [str(i[k]) for k in ("active", "completed", "exited")]
        table.add_row(r["name"], str(r["version"]), r["status"], *counts)
    console.print(table)


@app.command("stats")
def stats_cmd(name: str, fmt: Format = FORMAT) -> None:
    """Entered, active, completed, exits by reason, per-step counts, conversion against the holdout."""
    data = _run(journeys.stats, _state(), name)
    if fmt == "json":
        _print(data, fmt)
        return
    console.print(
        f"[bold]{name}[/]: entered {data['entered']}, active {data['active']}, completed {data['completed']}, "
        f"converted {data['converted']}"
    )
    for reason, count in data["exited"].items():
        console.print(f"  exited ({reason}): {count}")
    table = Table("step", "passed", "waiting", "outcomes")
    for s in data["steps"]:
        outcomes = ", ".join(f"{k}: {v}" for k, v in s["outcomes"].items())
        table.add_row(s["step"], str(s["passed"]), str(s["waiting"]), outcomes)
    console.print(table)
    conv = data["conversion"]
    if conv["lift_abs"] is not None:
        console.print(
            f"conversion {conv['journey']['rate']:.2%} vs holdout {conv['holdout']['rate']:.2%}: "
            f"lift {conv['lift_abs']:+.2%} (95% CI {conv['ci_low']:+.2%} .. {conv['ci_high']:+.2%})"
        )


@app.command("simulate")
def simulate_cmd(
    journey: str = typer.Argument(..., help="A definition file, or the name of a saved journey."),
    profile: str = typer.Option(..., "--profile", help="The customer, as TYPE:VALUE (e.g. email:ann@example.com)."),
    fmt: Format = FORMAT,
) -> None:
    """Dry run for one customer: each decision the journey would take and why. Nothing is stored or sent."""
    path = Path(journey)
    definition = path.read_text(encoding="utf-8") if path.is_file() else None
    s = settings()
    client = running_server(s)
    if client is not None:
        name = journeys.definition_of(definition).name if definition else journey
        with client:
            result = api_result(
                client.post(f"/api/v1/journeys/{name}/simulate", json={"identifier": profile, "definition": definition})
            )
    else:
        with local_platform(s, read_only=True) as platform:
            try:
                pid = profiles.resolve(platform.state, platform.rules, profile)
            except InvalidIdentifier as exc:
                raise fail(str(exc)) from exc
            if pid is None:
                raise fail(f"no profile holds {profile}")
            engine: Engine = platform.journeys
            traits = engine.traits([pid]).get(pid, {})
            lines = _run(journeys.simulate, engine, definition or journey, pid, traits)
            result = {"profile_id": pid, "decisions": lines}
    if fmt == "json":
        _print(result, fmt)
    else:
        console.print(f"profile {result['profile_id']}")
        for line in result["decisions"]:
            console.print(line, markup=False, highlight=False)


@app.command("tasks")
def tasks_cmd(
    queue: str = typer.Option(None, "--queue", help="store or call_center"),
    store: str = typer.Option(None, "--store", help="Only this store's tasks."),
    fmt: Format = FORMAT,
) -> None:
    """Open tasks journeys created for store associates and the call centre."""
    rows = journeys.tasks(_state(), queue, store)
    if fmt == "json":
        _print(rows, fmt)
        return
    table = Table("created", "queue", "store", "title", "profile")
    for r in rows:
        created = f"{r['created_at']:%Y-%m-%d %H:%M}"
        table.add_row(created, r["queue"] or "", r["store_id"] or "", r["title"], r["profile_id"])
    console.print(table)
