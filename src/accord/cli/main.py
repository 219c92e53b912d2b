"""`accord`: serve the platform, manage sources, look at profiles, import files, run the demo."""

from __future__ import annotations

import json
import os
from datetime import datetime
from typing import Any

import typer
from rich.table import Table

from accord.cli import analytics as analytics_cli
from accord.cli import commerce as commerce_cli
from accord.cli import demo as demo_cli
from accord.cli import identity as identity_cli
from accord.cli import journeys as journeys_cli
from accord.cli import loyalty as loyalty_cli
from accord.cli import messaging as messaging_cli
from accord.cli import offers as offers_cli
from accord.cli import segments as segments_cli
from accord.cli import users as users_cli
from accord.cli.context import Format, api_result, console, err_console, fail, local_platform, running_server, settings
from accord.collect.errors import CollectError
from accord.collect.sources import add_source, list_sources

app = typer.Typer(
    name="accord",
    help="Accord: one customer, one timeline, every channel.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
sources_app = typer.Typer(help="Sources (senders of events) and their write keys.", no_args_is_help=True)
profile_app = typer.Typer(
    help="Look at one customer: profile, timeline, merges; undo a wrong merge.", no_args_is_help=True
)
app.add_typer(sources_app, name="sources")
app.add_typer(profile_app, name="profile")
app.add_typer(demo_cli.app, name="demo")
app.add_typer(identity_cli.app, name="identity")
app.add_typer(commerce_cli.app, name="commerce")
app.add_typer(journeys_cli.app, name="journey")
app.add_typer(users_cli.app, name="users")
app.add_typer(offers_cli.app, name="offers")
app.add_typer(loyalty_cli.app, name="loyalty")
app.add_typer(messaging_cli.template_app, name="template")
app.add_typer(messaging_cli.broadcast_app, name="broadcast")
app.add_typer(messaging_cli.consent_app, name="consent")
app.add_typer(messaging_cli.providers_app, name="providers")
app.add_typer(messaging_cli.outbox_app, name="outbox")
app.add_typer(messaging_cli.calls_app, name="calls")
app.add_typer(messaging_cli.purchases_app, name="purchases")
app.add_typer(messaging_cli.privacy_app, name="privacy")
app.add_typer(analytics_cli.app, name="analyze")
app.add_typer(segments_cli.segment_app, name="segment")
app.add_typer(segments_cli.trait_app, name="trait")
app.add_typer(segments_cli.audience_app, name="audience")

try:  # the importers live in their own module
    from accord.cli import imports as imports_cli

    app.add_typer(imports_cli.app, name="import")
except ImportError:  # pragma: no cover - only while the module is absent
    pass


def _dump(data: Any) -> None:
    console.print_json(json.dumps(data, default=_jsonable))


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


@app.command()
def serve(
    host: str = typer.Option(None, help="Interface to listen on (ACCORD_HOST, default 127.0.0.1)."),
    port: int = typer.Option(None, help="Port (ACCORD_PORT, default 8000)."),
) -> None:
    """Run the HTTP server (collection endpoints, admin API) on the configured stores."""
    import uvicorn

    from accord.api.app import create_app, server_record
    from accord.api.commerce_fast import CommerceFastPath
    from accord.api.fastpath import CollectFastPath

    s = settings()
    host = host or s.host
    port = port or s.port
    if (client := running_server(s)) is not None:
        client.close()
        raise fail(f"a server already runs for ACCORD_HOME={s.home}")
    app_ = CommerceFastPath(CollectFastPath(create_app(s, settle_heap=s.gc_settle)))
    s.home.mkdir(parents=True, exist_ok=True)
    record = server_record(s, host, port)
    console.print(
        f"Accord serving on http://{host}:{port} (data in {s.home}); admin token in "
        f"{'ACCORD_ADMIN_TOKEN' if s.admin_token else s.home / 'admin_token'}"
    )
    try:
        uvicorn.run(
            app_,
            host=host,
            port=port,
            log_level=os.environ.get("ACCORD_LOG_LEVEL", "warning"),
            loop="uvloop",
            http="httptools",
            access_log=False,
        )
    finally:
        record.unlink(missing_ok=True)


@sources_app.command("add")
def sources_add(
    name: str = typer.Argument(..., help="A name for the sending system, e.g. web-shop."),
    channel: str = typer.Option("auto", help="Default channel of its events (web, app, store, ...; auto = derive)."),
    fmt: Format = typer.Option(Format.text, "--format", help="Output format."),
) -> None:
    """Register a source and print its write key."""
    s = settings()
    if (client := running_server(s)) is not None:
        with client:
            data = api_result(client.post("/api/v1/sources", json={"name": name, "channel": channel}))
    else:
        with local_platform(s) as platform:
            try:
                source = add_source(platform.state, name, channel)
            except CollectError as exc:
                raise fail(exc.message) from exc
            data = {"id": source.id, "name": source.name, "write_key": source.write_key, "channel": source.channel}
    if fmt is Format.json:
        _dump(data)
    else:
        console.print(data["write_key"])


@sources_app.command("list")
def sources_list(fmt: Format = typer.Option(Format.text, "--format", help="Output format.")) -> None:
    """List sources with their channels and write keys."""
    s = settings()
    if (client := running_server(s)) is not None:
        with client:
            rows = api_result(client.get("/api/v1/sources"))
    else:
        with local_platform(s, read_only=True) as platform:
            rows = [
                {
                    "id": x.id,
                    "name": x.name,
                    "write_key": x.write_key,
                    "channel": x.channel,
                    "created_at": x.created_at.isoformat(),
                }
                for x in list_sources(platform.state)
            ]
    if fmt is Format.json:
        _dump(rows)
        return
    table = Table("name", "channel", "write key", "created")
    for row in rows:
        table.add_row(row["name"], row["channel"], row["write_key"], str(row["created_at"])[:19])
    console.print(table)


def _profile_data(identifier: str, what: str, **params: Any) -> dict[str, Any]:
    """Fetch profile data through the server if one runs, else from the stores directly."""
    from accord.profiles import service as profiles
    from accord.segments import service as segments_service
    from accord.segments.engines import DuckDBEngine

    s = settings()
    if (client := running_server(s)) is not None:
        with client:
            resolved = client.get("/api/v1/profiles/resolve", params={"identifier": identifier})
            if resolved.status_code == 404:
                raise fail(f"no profile has identifier {identifier}")
            pid = api_result(resolved)["profile_id"]
            path = {"show": "", "timeline": "/events", "merges": "/merges"}[what]
            return api_result(client.get(f"/api/v1/profiles/{pid}{path}", params=params))
    with local_platform(s, read_only=True) as platform:
        try:
            pid = profiles.resolve(platform.state, platform.rules, identifier)
        except profiles.InvalidIdentifier as exc:
            raise fail(str(exc)) from exc
        if pid is None:
            raise fail(f"no profile has identifier {identifier}")
        if what == "show":
            result = profiles.profile_view(platform.state, platform.events, pid)
            if result is not None:
                result.update(segments_service.profile_additions(platform.state, DuckDBEngine(platform.events), pid))
        elif what == "timeline":
            result = profiles.timeline(
                platform.state,
                platform.events,
                pid,
                params["limit"],
                params.get("cursor"),
                params.get("channel"),
                params.get("order") == "desc",
            )
        else:
            result = profiles.merge_history(platform.state, pid)
        assert result is not None
        return json.loads(json.dumps(result, default=_jsonable))


@profile_app.command("show")
def profile_show(
    identifier: str = typer.Argument(..., help="TYPE:VALUE, e.g. email:ann@example.com or loyalty_card:123."),
    fmt: Format = typer.Option(Format.text, "--format", help="Output format."),
) -> None:
    """Show the profile holding an identifier: identifiers, traits, channels."""
    data = _profile_data(identifier, "show")
    if fmt is Format.json:
        _dump(data)
        return
    console.print(
        f"[bold]Profile {data['id']}[/]  events: {data['event_count']}  "
        f"first seen: {str(data['first_seen'])[:19]}  last seen: {str(data['last_seen'])[:19]}"
    )
    ids = Table("identifier type", "value", "first seen", title="Identifiers")
    for item in data["identifiers"]:
        ids.add_row(item["type"], item["value"], str(item["first_seen"])[:19])
    console.print(ids)
    traits = Table("trait", "value", "updated", "source", title="Traits")
    for key, item in data["traits"].items():
        traits.add_row(
            key, json.dumps(item["value"], ensure_ascii=False), str(item["updated_at"])[:19], item["source_id"] or ""
        )
    console.print(traits)
    channels = Table("channel", "events", "first seen", "last seen", title="Channels")
    for item in data["channels"]:
        channels.add_row(
            item["channel"], str(item["events"]), str(item["first_seen"])[:19], str(item["last_seen"])[:19]
        )
    console.print(channels)
    computed = Table("computed trait", "value", title="Computed traits")
    for key, value in (data.get("computed_traits") or {}).items():
        computed.add_row(key, "" if value is None else str(value))
    console.print(computed)
    console.print("Segments: " + (", ".join(data.get("segments") or []) or "none"))


@profile_app.command("timeline")
def profile_timeline(
    identifier: str = typer.Argument(..., help="TYPE:VALUE of any identifier of the customer."),
    limit: int = typer.Option(50, min=1, max=1000, help="Events per page."),
    cursor: str = typer.Option(None, help="Cursor from the previous page."),
    channel: str = typer.Option(None, help="Only this channel."),
    order: str = typer.Option("asc", help="asc (oldest first) or desc."),
    fmt: Format = typer.Option(Format.text, "--format", help="Output format."),
) -> None:
    """The customer's timeline across channels, in time order, each touch labelled with its channel."""
    params: dict[str, Any] = {"limit": limit, "order": order}
    if cursor:
        params["cursor"] = cursor
    if channel:
        params["channel"] = channel
    data = _profile_data(identifier, "timeline", **params)
    if fmt is Format.json:
        _dump(data)
        return
    table = Table("time (UTC)", "channel", "type", "event", "revenue", title=f"Timeline of {data['profile_id']}")
    for e in data["events"]:
        revenue = f"{e['revenue_minor']} {e['currency']} (minor)" if e.get("revenue_minor") is not None else ""
        table.add_row(str(e["timestamp"])[:19], e["channel"], e["type"], e.get("event") or e.get("name") or "", revenue)
    console.print(table)
    if data.get("next_cursor"):
        console.print(f"more: --cursor {data['next_cursor']}")


@profile_app.command("merges")
def profile_merges(
    identifier: str = typer.Argument(..., help="TYPE:VALUE of any identifier of the customer."),
    fmt: Format = typer.Option(Format.text, "--format", help="Output format."),
) -> None:
    """Merges, regroupings and unmerges of the customer's profile, and conflicts recorded for review."""
    data = _profile_data(identifier, "merges")
    if fmt is Format.json:
        _dump(data)
        return
    table = Table("when", "kind", "from", "into", "identifiers", "reason")
    for m in data["merges"]:
        table.add_row(
            str(m["at"])[:19],
            m["kind"],
            m["from_profile"],
            m["into_profile"],
            ", ".join(m["identifiers"][:5]),
            m["reason"][:80],
        )
    console.print(table)
    for c in data["conflicts"]:
        console.print(f"[yellow]conflict[/] {c['kind']} ({c['status']}): {c['detail']}")


@profile_app.command("unmerge")
def profile_unmerge(
    profile_id: str = typer.Argument(..., help="The profile that wrongly holds the identifier."),
    identifier: str = typer.Argument(..., help="TYPE:VALUE to detach, with the events it anchors."),
    reason: str = typer.Option("manual unmerge", help="Why (kept in the merge history)."),
    fmt: Format = typer.Option(Format.text, "--format", help="Output format."),
) -> None:
    """Detach an identifier and its events from a profile into a new profile."""
    from accord.identity.graph import IdentityRuleError
    from accord.profiles import service as profiles

    s = settings()
    if (client := running_server(s)) is not None:
        with client:
            data = api_result(
                client.post(f"/api/v1/profiles/{profile_id}/unmerge", json={"identifier": identifier, "reason": reason})
            )
    else:
        with local_platform(s) as platform:
            try:
                data = profiles.unmerge(platform.graph, profile_id, identifier, reason)
            except (profiles.InvalidIdentifier, IdentityRuleError) as exc:
                raise fail(str(exc)) from exc
            platform.processor.sync_identity()
    if fmt is Format.json:
        _dump(data)
    else:
        console.print(f"{data['identifier']} moved from {data['profile_id']} to new profile {data['new_profile_id']}")


@app.command()
def stats(fmt: Format = typer.Option(Format.text, "--format", help="Output format.")) -> None:
    """Counts of events (by channel), profiles and rejected messages."""
    s = settings()
    if (client := running_server(s)) is not None:
        with client:
            data = api_result(client.get("/api/v1/stats"))
    else:
        with local_platform(s, read_only=True) as platform:
            data = platform.stats()
    if fmt is Format.json:
        _dump(data)
        return
    console.print(
        f"events: {data['events']}  profiles: {data['profiles']}  "
        f"rejected messages: {data['rejected_messages']}  processing lag: {data['processing_lag']}"
    )
    table = Table("channel", "events")
    for channel, count in sorted(data["events_by_channel"].items(), key=lambda kv: -kv[1]):
        table.add_row(channel, str(count))
    console.print(table)


def main() -> None:
    """Entry point: user errors are messages; an unexpected failure is one line unless ACCORD_DEBUG is set."""
    try:
        app()
    except Exception as exc:
        if os.environ.get("ACCORD_DEBUG"):
            raise
        err_console.print(f"[bold red]error:[/] {type(exc).__name__}: {exc} (set ACCORD_DEBUG=1 for the traceback)")
        raise SystemExit(1) from None
