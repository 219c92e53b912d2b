"""`accord template|broadcast|consent|providers|calls|purchases|outbox`: messaging from the command line."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
from rich.progress import Progress
from rich.table import Table

from accord.cli.context import api_result, console, fail, local_platform, running_server, settings
from accord.consent.service import ConsentError
from accord.messaging.service import MessagingError
from accord.platform import Platform

template_app = typer.Typer(
    help="Message templates: apply from a JSON file, list, preview for a customer.", no_args_is_help=True
)
broadcast_app = typer.Typer(
    help="Send a template to a segment or a list, now, later or at local time.", no_args_is_help=True
)
consent_app = typer.Typer(help="Consent per purpose and channel: set and show.", no_args_is_help=True)
providers_app = typer.Typer(
    help="Channel providers (SMTP, HTTP SMS/push, webhook, in-app, direct-mail print file, call list).",
    no_args_is_help=True,
)
privacy_app = typer.Typer(
    help="Data-subject requests: export everything held about a person, or erase them.", no_args_is_help=True
)
calls_app = typer.Typer(help="The call-centre task list: calls to make and the agents' outcomes.", no_args_is_help=True)
purchases_app = typer.Typer(
    help="Messaging's record of who bought what (for the already-purchased rule): show, rebuild.", no_args_is_help=True
)
outbox_app = typer.Typer(
    help="The outbox sender (the server runs one; this runs one without a server).", no_args_is_help=True
)


class Format(StrEnum):
    """Output format."""

    text = "text"
    json = "json"


def _out(data: Any, fmt: Format, text: Callable[[Any], None] | None = None) -> None:
    if fmt is Format.json or text is None:
        console.print_json(json.dumps(data, default=str, ensure_ascii=False))
    else:
        text(data)


@contextmanager
def _local() -> Iterator[Platform]:
    with local_platform(settings()) as platform:
        try:
            yield platform
        except (MessagingError, ConsentError) as exc:
            raise fail(exc.message) from exc


def _remote_or_local(method: str, path: str, body: Any, local: Callable[[Platform], Any], **params: Any) -> Any:
    """Through the running server when there is one, else on the local stores."""
    s = settings()
    if (client := running_server(s)) is not None:
        with client:
            return api_result(client.request(method, path, json=body, params=params or None))
    with _local() as platform:
        result = local(platform)
        platform.processor.drain()  # timeline events of the change are loaded before the stores close
        return json.loads(json.dumps(result, default=str))


# -- templates ------------------------------------------------------------------------------------------------------
@template_app.command("apply")
def template_apply(
    file: Path = typer.Argument(
        ..., exists=True, readable=True, help="JSON or YAML (.yaml/.yml): name, purpose, tags, locales, promotes."
    ),
    fmt: Format = typer.Option(Format.text, "--format"),
) -> None:
    """Create or replace a template from FILE (validated and sandbox-checked before it is saved)."""
    text = file.read_text(encoding="utf-8")
    if file.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            spec = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise fail(f"{file} is not valid YAML: {exc}") from exc
        if not isinstance(spec, dict):
            raise fail(f"{file} must hold one template (a mapping with name, purpose, locales)")
    else:
        try:
            spec = json.loads(text)
        except ValueError as exc:
            raise fail(f"{file} is not valid JSON: {exc}") from exc
    data = _remote_or_local("POST", "/api/v1/templates", spec, lambda p: p.messaging.save_template(spec))

    def saved(d: dict[str, Any]) -> None:
        promotes = f"; promotes {json.dumps(d['promotes'])}" if d.get("promotes") else ""
        console.print(f"template {d['name']} saved: {json.dumps(d['locales'])}{promotes}")

    _out(data, fmt, saved)


@template_app.command("list")
def template_list(fmt: Format = typer.Option(Format.text, "--format")) -> None:
    """List templates with their locales and channels."""
    data = _remote_or_local("GET", "/api/v1/templates", None, lambda p: p.messaging.list_templates())

    def text(rows: list[dict[str, Any]]) -> None:
        table = Table("name", "purpose", "default", "locales")
        for r in rows:
            table.add_row(r["name"], r["purpose"], r["default_locale"], json.dumps(r["locales"], ensure_ascii=False))
        console.print(table)

    _out(data, fmt, text)


@template_app.command("preview")
def template_preview(
    name: str = typer.Argument(..., help="Template name."),
    identifier: str = typer.Option(None, help="TYPE:VALUE of the customer to render for (else sample data)."),
    locale: str = typer.Option(None, help="Force a locale (else the customer's)."),
    fmt: Format = typer.Option(Format.text, "--format"),
) -> None:
    """Render every channel of a template for one customer, in their language."""
    params = {k: v for k, v in {"identifier": identifier, "locale": locale}.items() if v}

    def local(p: Platform) -> Any:
        from accord.profiles import service as profiles

        pid = profiles.resolve(p.state, p.rules, identifier) if identifier else None
        if identifier and pid is None:
            raise fail(f"no profile has identifier {identifier}")
        return p.messaging.preview(name, pid, locale=locale)

    data = _remote_or_local("GET", f"/api/v1/templates/{name}/preview", None, local, **params)

    def text(d: dict[str, Any]) -> None:
        console.print(f"[bold]{d['template']}[/] locale {d['locale']} profile {d['profile_id'] or '(sample)'}")
        for channel, fields in d["channels"].items():
            console.rule(channel)
            for key, value in fields.items():
                console.print(f"[dim]{key}:[/] {value}")

    _out(data, fmt, text)


# -- broadcasts ------------------------------------------------------------------------------------------------------
def _percent(text: str | None) -> float:
    if not text:
        return 0.0
    try:
        return float(text.strip().rstrip("%"))
    except ValueError as exc:
        raise fail(f"holdout must be a percentage like 10% (got {text!r})") from exc


@broadcast_app.command("send")
def broadcast_send(
    template: str = typer.Option(..., help="Template name."),
    name: str = typer.Option(None, help="A name for the broadcast (default: the template's)."),
    segment: str = typer.Option(None, help="Segment name (the audience)."),
    identifiers: Path = typer.Option(None, help="File with one TYPE:VALUE per line (the audience)."),
    channels: str = typer.Option(None, help="Channel preference, e.g. push,sms,email (default: policy's)."),
    at: datetime = typer.Option(None, help="Send at (ISO 8601 with offset); default now."),
    local_time: str = typer.Option(None, "--local-time", help="Time of day in each recipient's zone, e.g. 10:00."),
    holdout: str = typer.Option(None, help="Deterministic holdout, e.g. 10%."),
    rate: float = typer.Option(None, help="At most this many messages per second."),
    variant: list[str] = typer.Option(None, help="A/B arm NAME=TEMPLATE[:WEIGHT]; repeat for each arm."),
    promotes: str = typer.Option(
        None, help="Promoted SKUs, e.g. SKU-1,SKU-2: people who bought one are not sent it (default: the template's)."
    ),
    promotes_category: str = typer.Option(None, "--promotes-category", help="Promoted categories, comma-separated."),
    within: str = typer.Option("90d", help="With --promotes: bought within this long before, e.g. 90d, 12w."),
    fmt: Format = typer.Option(Format.text, "--format"),
) -> None:
    """Plan a broadcast: every recipient gets a policy decision, and those to be sent an outbox entry."""
    if (segment is None) == (identifiers is None):
        raise fail("give exactly one audience: --segment NAME or --identifiers FILE")
    if at is not None and at.tzinfo is None:
        raise fail("--at needs a UTC offset, e.g. 2026-05-01T09:00:00+02:00")
    arms = None
    if variant:
        arms = []
        for text in variant:
            arm, _, rest = text.partition("=")
            tmpl, _, weight = rest.partition(":")
            if not arm or not tmpl:
                raise fail(f"--variant must be NAME=TEMPLATE[:WEIGHT], got {text!r}")
            arms.append({"name": arm, "template": tmpl, "weight": float(weight or 1)})
    body: dict[str, Any] = {
        "name": name or template,
        "template": template,
        "channels": channels.split(",") if channels else None,
        "at": at.isoformat() if at else None,
        "local_time": local_time,
        "holdout_percent": _percent(holdout),
        "rate_per_second": rate,
        "variants": arms,
    }
    if promotes or promotes_category:
        body["promotes"] = {
            "skus": [x.strip() for x in (promotes or "").split(",") if x.strip()],
            "categories": [x.strip() for x in (promotes_category or "").split(",") if x.strip()],
            "within": within,
        }
    if segment:
        body["segment"] = segment
    else:
        body["identifiers"] = [line.strip() for line in identifiers.read_text().splitlines() if line.strip()]

    def local(p: Platform) -> Any:
        from accord.messaging.broadcasts import create_broadcast

        audience = {"segment": segment} if segment else {"identifiers": body["identifiers"]}
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("planning", total=None)
            return create_broadcast(
                p.messaging,
                body["name"],
                template,
                audience,
                channels=body["channels"],
                at=at,
                local_time=local_time,
                holdout_percent=body["holdout_percent"],
                variants=arms,
                rate_per_second=rate,
                progress=lambda done, total: progress.update(task, completed=done, total=total),
                promotes=body.get("promotes"),
            )

    data = _remote_or_local("POST", "/api/v1/broadcasts", body, local)
    _out(data, fmt, lambda d: console.print(f"broadcast {d['id']}: {d['audience']} recipients, planned {d['planned']}"))


@broadcast_app.command("show")
def broadcast_show(broadcast_id: str, fmt: Format = typer.Option(Format.text, "--format")) -> None:
    """Results of a broadcast by A/B variant and delivery status, with delivered cost."""
    from accord.messaging.broadcasts import broadcast_report

    data = _remote_or_local(
        "GET", f"/api/v1/broadcasts/{broadcast_id}", None, lambda p: broadcast_report(p.messaging, broadcast_id)
    )

    def text(d: dict[str, Any]) -> None:
        console.print(f"[bold]{d['name']}[/] ({d['status']}) planned {d['planned']}")
        table = Table("variant", "by status", "opened", "clicked", "cost (minor)")
        for v, row in d["variants"].items():
            table.add_row(
                v, json.dumps(row["by_status"]), str(row["opened"]), str(row["clicked"]), str(row["cost_minor"])
            )
        console.print(table)

    _out(data, fmt, text)


# -- consent ---------------------------------------------------------------------------------------------------------
@consent_app.command("set")
def consent_set(
    identifier: str = typer.Argument(..., help="TYPE:VALUE, e.g. email:ann@example.com."),
    purpose: str = typer.Argument(..., help="newsletter, promotions, loyalty, order_updates, service."),
    channel: str = typer.Argument(..., help="email, sms, push, messenger, in_app, direct_mail, call."),
    status: str = typer.Argument(..., help="opted_in, opted_out, pending, unknown."),
    source: str = typer.Option("cli", help="Where the consent was given."),
    legal_basis: str = typer.Option(None, help="consent, contract, legitimate_interest, ..."),
    expires: datetime = typer.Option(None, help="When the consent lapses (ISO 8601 with offset)."),
    fmt: Format = typer.Option(Format.text, "--format"),
) -> None:
    """Record a consent change (an event on the customer's timeline)."""
    body = {
        "identifier": identifier,
        "purpose": purpose,
        "channel": channel,
        "status": status,
        "source": source,
        "legal_basis": legal_basis,
        "expires_at": expires.isoformat() if expires else None,
    }
    data = _remote_or_local(
        "POST",
        "/api/v1/consents",
        body,
        lambda p: p.consents.set(identifier, purpose, channel, status, source, legal_basis, expires).as_dict(),
    )
    _out(data, fmt, lambda d: console.print(f"{d['identifier']}: {d['purpose']} by {d['channel']} is {d['status']}"))


@consent_app.command("show")
def consent_show(
    identifier: str = typer.Argument(..., help="TYPE:VALUE of any identifier of the customer."),
    fmt: Format = typer.Option(Format.text, "--format"),
) -> None:
    """Every consent of the customer, and the channels they can be reached on."""
    data = _remote_or_local(
        "GET", "/api/v1/consents", None, lambda p: p.consents.show(identifier), identifier=identifier
    )

    def text(d: dict[str, Any]) -> None:
        console.print(f"reachable on: {', '.join(d['reachable']) or 'nothing'}")
        table = Table("purpose", "channel", "status", "identifier", "source", "updated", "expires")
        for c in d["consents"]:
            table.add_row(
                c["purpose"],
                c["channel"],
                c["effective_status"],
                c["identifier"],
                c["source"],
                str(c["updated_at"])[:19],
                str(c["expires_at"] or "")[:19],
            )
        console.print(table)

    _out(data, fmt, text)


# -- providers -------------------------------------------------------------------------------------------------------
@providers_app.command("add")
def providers_add(
    name: str = typer.Argument(..., help="A name, e.g. smtp-main."),
    channel: str = typer.Option(..., help="email, sms, push, in_app, messenger, webhook, direct_mail, call."),
    kind: str = typer.Option(
        ..., help="smtp, http, twilio, fcm, webpush, webhook, in_app, print_file (direct_mail), call_list (call)."
    ),
    config: str = typer.Option("{}", help='JSON settings, e.g. {"host": "smtp.example.com", "port": 587}.'),
    priority: int = typer.Option(100, help="Lower is tried first; the next takes over on failure."),
    cost: int = typer.Option(0, help="Cost per delivered message (per SMS segment) in minor units."),
    currency: str = typer.Option("EUR", help="ISO 4217 currency of the cost."),
    fmt: Format = typer.Option(Format.text, "--format"),
) -> None:
    """Add or replace a provider."""
    try:
        settings_json = json.loads(config)
    except ValueError as exc:
        raise fail(f"--config is not valid JSON: {exc}") from exc
    body = {
        "name": name,
        "channel": channel,
        "kind": kind,
        "config": settings_json,
        "priority": priority,
        "cost_minor": cost,
        "currency": currency,
    }
    data = _remote_or_local(
        "POST",
        "/api/v1/providers",
        body,
        lambda p: p.messaging.add_provider(name, channel, kind, settings_json, priority, cost, currency),
    )
    _out(data, fmt, lambda d: console.print(f"provider {d['name']} ({d['kind']}) serves {d['channel']}"))


@providers_app.command("list")
def providers_list(fmt: Format = typer.Option(Format.text, "--format")) -> None:
    """Providers by channel and priority."""
    data = _remote_or_local("GET", "/api/v1/providers", None, lambda p: p.messaging.list_providers())

    def text(rows: list[dict[str, Any]]) -> None:
        table = Table("channel", "priority", "name", "kind", "cost", "enabled")
        for r in rows:
            table.add_row(
                r["channel"],
                str(r["priority"]),
                r["name"],
                r["kind"],
                f"{r['cost_minor']} {r['currency']}",
                str(r["enabled"]),
            )
        console.print(table)

    _out(data, fmt, text)


@providers_app.command("remove")
def providers_remove(name: str) -> None:
    """Remove a provider."""
    s = settings()
    if (client := running_server(s)) is not None:
        with client:
            response = client.delete(f"/api/v1/providers/{name}")
            if response.status_code != 204:
                api_result(response)
    else:
        with _local() as platform:
            platform.messaging.remove_provider(name)
    console.print(f"provider {name} removed")


# -- privacy --------------------------------------------------------------------------------------------------------
@privacy_app.command("export")
def privacy_export(
    identifier: str = typer.Argument(..., help="TYPE:VALUE of any identifier of the person."),
    out: Path = typer.Option(..., "--out", help="File to write (JSON)."),
) -> None:
    """Write everything held about a person (profile, timeline, consents, messages, hold-outs) to a JSON file."""
    from accord.messaging.privacy import export_person

    s = settings()
    if (client := running_server(s)) is not None:
        with client:
            data = api_result(client.get("/api/v1/privacy/export", params={"identifier": identifier}))
    else:
        with _local() as p:
            data = json.loads(
                json.dumps(export_person(p.state, p.events, p.consents, p.messaging, identifier), default=str)
            )
    out.write_text(json.dumps(data, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
    console.print(f"{len(data['timeline'])} events, {len(data['messages'])} messages written to {out}")


@privacy_app.command("erase")
def privacy_erase(
    identifier: str = typer.Argument(..., help="TYPE:VALUE of any identifier of the person."),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
    requested_by: str = typer.Option("cli", "--requested-by", help="Who asked (kept in the audit record)."),
    fmt: Format = typer.Option(Format.text, "--format", help="text or json."),
) -> None:
    """Erase a person from the state and event stores and keep their identifiers (hashed) on the suppression list,
    so that a re-import or a new event does not bring them back. Cannot be undone."""
    from accord.messaging.privacy import erase_person

    if not yes and not typer.confirm(f"Erase the person holding {identifier} everywhere? This cannot be undone"):
        console.print("nothing erased")
        raise typer.Exit(1)
    s = settings()
    if (client := running_server(s)) is not None:
        with client:
            data = api_result(
                client.post("/api/v1/privacy/erase", json={"identifier": identifier, "requested_by": requested_by})
            )
    else:
        with _local() as p:
            data = erase_person(p.state, p.events, p.consents, p.messaging, identifier, requested_by, p.processor.drain)

    def text(d: dict[str, Any]) -> None:
        console.print(
            f"erased {d['profiles']} profile(s), {d['identifiers']} identifier(s) now suppressed, "
            f"{d['events']} events, {d['consents']} consents; request {d['request_id']}"
        )

    _out(data, fmt, text)


# -- call centre ----------------------------------------------------------------------------------------------------
@calls_app.command("list")
def calls_list(
    status: str = typer.Option("sent", help="sent (still to call), delivered, failed, unsubscribed or all."),
    fmt: Format = typer.Option(Format.text, "--format"),
) -> None:
    """Call tasks, oldest due first."""
    wanted = None if status == "all" else status
    data = _remote_or_local(
        "GET", "/api/v1/call-center/tasks", None, lambda p: p.messaging.call_tasks(wanted), status=status
    )

    def text(rows: list[dict[str, Any]]) -> None:
        table = Table("id", "name", "phone", "status", "script")
        for r in rows:
            table.add_row(r["id"], r["name"] or "", r["phone"] or "", r["status"], r["script"] or "")
        console.print(table)

    _out(data, fmt, text)


@calls_app.command("record")
def calls_record(
    task: str = typer.Argument(..., help="The task's (delivery's) id."),
    outcome: str = typer.Argument(..., help="reached, no_answer or refused."),
    agent: str | None = typer.Option(None, help="Who called."),
    note: str | None = typer.Option(None, help="A note for the timeline."),
    fmt: Format = typer.Option(Format.text, "--format"),
) -> None:
    """Record a call's outcome (on the customer's timeline)."""
    body = {"outcome": outcome, "agent": agent, "note": note}
    data = _remote_or_local(
        "POST",
        f"/api/v1/call-center/tasks/{task}",
        body,
        lambda p: p.messaging.record_call(task, outcome, agent, note),
    )
    _out(data, fmt, lambda d: console.print(f"call {d['id']}: {outcome} -> {d['status']}"))


# -- outbox ----------------------------------------------------------------------------------------------------------
# -- purchases ------------------------------------------------------------------------------------------------------
@purchases_app.command("show")
def purchases_show(identifier: str, fmt: Format = typer.Option(Format.text, "--format")) -> None:
    """What messaging holds as bought by a person (TYPE:VALUE), newest first, with returned units."""
    from accord.messaging.purchases import purchases_of
    from accord.profiles import service as profiles

    s = settings()
    if (client := running_server(s)) is not None:
        with client:
            pid = api_result(client.get("/api/v1/profiles/resolve", params={"identifier": identifier}))
            data = api_result(client.get(f"/api/v1/profiles/{pid['profile_id']}/purchases"))
    else:
        with _local() as p:
            try:
                pid_local = profiles.resolve(p.state, p.rules, identifier)
            except profiles.InvalidIdentifier as exc:
                raise fail(str(exc)) from exc
            if pid_local is None:
                raise fail(f"no profile has identifier {identifier}")
            data = purchases_of(p.state, pid_local)

    def text(rows: list[dict[str, Any]]) -> None:
        table = Table("purchased at", "sku", "category", "qty", "returned", "order", "channel")
        for r in rows:
            table.add_row(
                r["purchased_at"], r["sku"], r["category"] or "", str(r["quantity"]), str(r["returned_quantity"]),
                r["order_id"], r["channel"] or "",
            )  # fmt: skip
        console.print(table)

    _out(data, fmt, text)


@purchases_app.command("rebuild")
def purchases_rebuild(fmt: Format = typer.Option(Format.text, "--format")) -> None:
    """Empty the record and read every order event of the event store again (after an upgrade or to check it)."""

    def local(p: Platform) -> Any:
        if p.purchases is None:
            raise fail("this installation keeps no record of purchases")
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("reading order events", total=None)
            return p.purchases.rebuild(lambda done, total: progress.update(task, completed=done, total=total))

    data = _remote_or_local("POST", "/api/v1/purchases/rebuild", None, local)
    _out(
        data,
        fmt,
        lambda d: console.print(
            f"{d['purchase_lines']} purchased items of {d['people']} people from {d['events']} order events "
            f"(journal seq {d['upto_seq']}, {d['seconds']:.1f} s)"
        ),
    )


@outbox_app.command("run")
def outbox_run(
    until_idle: bool = typer.Option(False, "--until-idle", help="Stop when nothing is due (else run until Ctrl-C)."),
    batch: int = typer.Option(200, help="Deliveries claimed per round."),
    lease: float = typer.Option(60.0, help="Seconds a claim holds before another sender may take it over."),
    backoff: float = typer.Option(2.0, help="Seconds before the first retry (doubles each time)."),
) -> None:
    """Send what the outbox holds, on the state store only (safe next to a server; claims are leased)."""
    from accord.collect.journal import Journal
    from accord.identity.rules import IdentityRules
    from accord.messaging.sender import Sender
    from accord.messaging.wiring import consents_for, messaging_for
    from accord.storage import create_state_engine, migrate

    s = settings()
    state = create_state_engine(s.state_url)
    migrate(state)
    rules = IdentityRules.from_settings(s.identity_priority, s.identity_limits, s.blocked_values, s.default_region)
    journal = Journal(state)
    consents = consents_for(s, state, journal, rules)
    sender = Sender(
        messaging_for(s, state, journal, consents, None),
        batch_size=batch,
        lease=timedelta(seconds=lease),
        backoff=backoff,
    )
    try:
        if until_idle:
            sent = sender.drain(timeout=float("inf"))
            console.print(f"handled {sent} deliveries")
        else:
            stop = threading.Event()
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
            try:
                sender.run_forever(stop)
            except KeyboardInterrupt:
                stop.set()
    finally:
        sender.close()
        state.dispose()
