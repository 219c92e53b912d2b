"""`accord segment | trait | audience`: segments and computed traits from YAML files, members, hashed audiences."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from accord.cli.context import api_result, console, fail, local_platform, running_server, settings
from accord.platform import Platform
from accord.segments import service
from accord.segments.engines import DuckDBEngine
from accord.segments.rules import RuleError, SegmentDefinition, TraitDefinition, parse_documents

segment_app = typer.Typer(help="Segments: apply and preview YAML rules, list them, see members.", no_args_is_help=True)
trait_app = typer.Typer(help="Computed traits: built-ins and your own, declared in YAML.", no_args_is_help=True)
audience_app = typer.Typer(help="Audiences for ad platforms (hashed identifiers).", no_args_is_help=True)


class Format(StrEnum):
    """Output format."""

    text = "text"
    json = "json"


class MembersFormat(StrEnum):
    """Members output format."""

    text = "text"
    json = "json"
    csv = "csv"


class ExportFormat(StrEnum):
    """Audience export format."""

    hashed_csv = "hashed-csv"


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "__dict__"):
        return value.__dict__
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _plain(data: Any) -> Any:
    return json.loads(json.dumps(data, default=_jsonable))


def _dump(data: Any) -> None:
    console.print_json(json.dumps(data, default=_jsonable))


def _read(path: Path, kind: str) -> list[Any]:
    if not path.exists():
        raise fail(f"{path} does not exist")
    try:
        return parse_documents(path.read_text(encoding="utf-8"), kind)
    except RuleError as exc:
        raise fail(f"{path}: {exc}") from exc


def _run(remote: Callable[[Any], Any], local: Callable[[Platform], Any], read_only: bool = False) -> Any:
    """Through the running server if there is one, else on the local stores."""
    s = settings()
    if (client := running_server(s)) is not None:
        with client:
            return remote(client)
    with local_platform(s, read_only=read_only) as platform:
        try:
            return _plain(local(platform))
        except RuleError as exc:
            raise fail(str(exc)) from exc
        except (service.SegmentNotFound, service.SegmentInUse) as exc:
            raise fail(str(exc)) from exc


@segment_app.command("apply")
def segment_apply(
    file: Path = typer.Argument(..., help="YAML or JSON file with one segment or a list of them."),
    fmt: Format = typer.Option(Format.text, "--format", help="Output format."),
) -> None:
    """Save segments (create or replace) and evaluate them now; from then on they follow every event."""
    results = []
    for definition in _read(file, "segment"):

        def remote(c: Any, d: SegmentDefinition = definition) -> Any:
            return api_result(c.post("/api/v1/segments", json=d.source))

        def local(p: Platform, d: SegmentDefinition = definition) -> Any:
            return service.apply_segment(p.state, DuckDBEngine(p.events), p.journal, d, None)

        results.append(_run(remote, local))
    if fmt is Format.json:
        _dump(results)
        return
    for r in results:
        console.print(f"{r['name']}: {r['size']} members (+{r['entered']} entered, -{r['exited']} exited)")


@segment_app.command("preview")
def segment_preview(
    file: Path = typer.Argument(..., help="YAML or JSON file with one segment."),
    sample: int = typer.Option(10, min=0, max=1000, help="How many member ids to show."),
    fmt: Format = typer.Option(Format.text, "--format", help="Output format."),
) -> None:
    """Count and a sample of the members, without saving anything."""
    results = []
    for definition in _read(file, "segment"):

        def remote(c: Any, d: SegmentDefinition = definition) -> Any:
            return api_result(c.post("/api/v1/segments/preview", json=d.source, params={"sample": sample}))

        def local(p: Platform, d: SegmentDefinition = definition) -> Any:
            return service.preview(p.state, DuckDBEngine(p.events), d, None, sample)

        results.append(_run(remote, local, read_only=True))
    if fmt is Format.json:
        _dump(results)
        return
    for r in results:
        console.print(f"[bold]{r['name']}[/]: {r['count']} members")
        for pid in r["sample"]:
            console.print(f"  {pid}")


@segment_app.command("list")
def segment_list(fmt: Format = typer.Option(Format.text, "--format", help="Output format.")) -> None:
    """Saved segments and their sizes."""
    rows = _run(lambda c: api_result(c.get("/api/v1/segments")), lambda p: service.list_segments(p.state), True)
    if fmt is Format.json:
        _dump(rows)
        return
    table = Table("segment", "members", "updated", "description", title="Segments")
    for r in rows:
        table.add_row(r["name"], str(r["size"]), str(r["updated_at"])[:19], r["description"])
    console.print(table)


@segment_app.command("members")
def segment_members(
    name: str = typer.Argument(..., help="Segment name."),
    fmt: MembersFormat = typer.Option(MembersFormat.text, "--format", help="text, json or csv."),
    limit: int = typer.Option(None, min=1, help="At most this many."),
) -> None:
    """Current members of a segment (profile id and when they entered)."""
    params = {"limit": limit} if limit else {}

    def local(p: Platform) -> Any:
        if not any(s["name"] == name for s in service.list_segments(p.state)):
            raise service.SegmentNotFound(f"there is no segment named {name!r}")
        return {"segment": name, "members": service.members(p.state, name, limit)}

    data = _run(lambda c: api_result(c.get(f"/api/v1/segments/{name}/members", params=params)), local, True)
    rows = data["members"]
    if fmt is MembersFormat.json:
        _dump(rows)
    elif fmt is MembersFormat.csv:
        print("profile_id,entered_at")
        for r in rows:
            print(f"{r['profile_id']},{r['entered_at']}")
    else:
        for r in rows:
            console.print(f"{r['profile_id']}  {str(r['entered_at'])[:19]}")
        console.print(f"{len(rows)} members")


@segment_app.command("sizes")
def segment_sizes(
    name: str = typer.Argument(..., help="Segment name."),
    fmt: Format = typer.Option(Format.text, "--format", help="Output format."),
) -> None:
    """Size of a segment over time."""
    data = _run(
        lambda c: api_result(c.get(f"/api/v1/segments/{name}/sizes")),
        lambda p: {"segment": name, "sizes": service.size_history(p.state, name)},
        True,
    )
    if fmt is Format.json:
        _dump(data["sizes"])
        return
    for r in data["sizes"]:
        console.print(f"{str(r['at'])[:19]}  {r['size']}")


@segment_app.command("delete")
def segment_delete(name: str = typer.Argument(..., help="Segment name.")) -> None:
    """Delete a segment; its members exit."""
    _run(
        lambda c: api_result(c.delete(f"/api/v1/segments/{name}")),
        lambda p: service.delete_segment(p.state, name),
    )
    console.print(f"deleted {name}")


@segment_app.command("changes")
def segment_changes(
    after: int = typer.Option(0, help="Only changes after this sequence number."),
    limit: int = typer.Option(100, min=1, max=10_000, help="At most this many."),
    fmt: Format = typer.Option(Format.text, "--format", help="Output format."),
) -> None:
    """Membership changes (entered / exited) in order: the feed journeys follow."""
    data = _run(
        lambda c: api_result(c.get("/api/v1/segments/changes", params={"after": after, "limit": limit})),
        lambda p: {"changes": service.membership_changes_since(p.state, after, limit)},
        True,
    )
    if fmt is Format.json:
        _dump(data["changes"])
        return
    for r in data["changes"]:
        console.print(f"{r['seq']}  {str(r['at'])[:19]}  {r['segment']}  {r['change']}  {r['profile_id']}")


@trait_app.command("apply")
def trait_apply(
    file: Path = typer.Argument(..., help="YAML or JSON file with one computed trait or a list of them."),
    fmt: Format = typer.Option(Format.text, "--format", help="Output format."),
) -> None:
    """Declare computed traits (count, sum, avg, min, max, first, last, most_frequent, distinct_count, days_since)."""
    results = []
    for definition in _read(file, "trait"):

        def remote(c: Any, d: TraitDefinition = definition) -> Any:
            return api_result(c.post("/api/v1/traits", json=d.source))

        def local(p: Platform, d: TraitDefinition = definition) -> Any:
            return service.apply_trait(p.state, d)

        results.append(_run(remote, local))
    if fmt is Format.json:
        _dump(results)
        return
    for r in results:
        console.print(f"{r['name']}: saved ({r['kind']})")


@trait_app.command("list")
def trait_list(fmt: Format = typer.Option(Format.text, "--format", help="Output format.")) -> None:
    """Built-in and declared computed traits."""
    rows = _run(lambda c: api_result(c.get("/api/v1/traits")), lambda p: service.list_traits(p.state), True)
    if fmt is Format.json:
        _dump(rows)
        return
    table = Table("trait", "kind", "built-in", "description", title="Computed traits")
    for r in rows:
        table.add_row(r["name"], r["kind"], "yes" if r["builtin"] else "", r["description"])
    console.print(table)


@audience_app.command("export")
def audience_export(
    name: str = typer.Argument(..., help="Segment name."),
    fmt: ExportFormat = typer.Option(ExportFormat.hashed_csv, "--format", help="hashed-csv"),
    out: Path = typer.Option(None, help="Write to this file instead of standard output."),
) -> None:
    """Members as SHA-256 of normalised emails (trimmed, lower-case) and E.164 phones, for custom audiences."""
    from accord.identity import queries as identity_queries

    def remote(c: Any) -> str:
        response = c.get(f"/api/v1/segments/{name}/export", params={"format": fmt.value})
        if response.status_code >= 400:
            api_result(response)
        return str(response.text)

    def local(p: Platform) -> str:
        text, _rows = service.hashed_audience_csv(
            p.state, name, lambda pid: identity_queries.identifiers_of(p.state, pid)
        )
        return text

    text = _run(remote, local, True)
    if out:
        out.write_text(text, encoding="utf-8")
        console.print(f"wrote {max(text.count(chr(10)) - 1, 0)} rows to {out}")
    else:
        print(text, end="")
