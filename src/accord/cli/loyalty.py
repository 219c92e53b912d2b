"""`accord loyalty`: balances and tiers, earn, burn, adjust, the ledger, the program, rewards, expiry, backfill."""

from __future__ import annotations

import json
import secrets
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from accord.cli.context import console, err_console, fail
from accord.cli.offers import FORMAT, api, dump

app = typer.Typer(help="Loyalty points: balance, earn, burn, ledger, program, rewards.", no_args_is_help=True)


def _key(key: str | None) -> str:
    return key or "cli-" + secrets.token_hex(8)


@app.command("show")
def show(profile_id: str, fmt: str = FORMAT) -> None:
    """Balance, tier, next tier, next expiry and latest entries."""
    with api() as a:
        account = a.call("GET", f"/api/v1/loyalty/{profile_id}")
    if fmt == "json":
        dump(account)
        return
    console.print(f"[bold]{account['balance']:,}[/] points, tier [bold]{account['tier']}[/]")
    if account["next_tier"]:
        console.print(f"{account['next_tier']['points_needed']:,} points to {account['next_tier']['name']}")
    if account["next_expiry"]:
        console.print(f"{account['next_expiry']['points']:,} points expire {account['next_expiry']['at']}")


@app.command("ledger")
def ledger(profile_id: str, limit: int = typer.Option(50, help="Entries (newest first)."), fmt: str = FORMAT) -> None:
    """Ledger entries, newest first."""
    with api() as a:
        entries = a.call("GET", f"/api/v1/loyalty/{profile_id}/ledger", params={"limit": limit})
    if fmt == "json":
        dump(entries)
        return
    table = Table("when", "kind", "points", "balance", "channel", "reason")
    for e in entries:
        table.add_row(str(e["created_at"])[:19], e["kind"], f"{e['points']:+,}", f"{e['balance_after']:,}",
                      e["channel"] or "", e["reason"] or "")  # fmt: skip
    console.print(table)


@app.command("earn")
def earn(
    profile_id: str,
    channel: str = typer.Option(..., help="Channel of the purchase or action (multipliers apply)."),
    points: int = typer.Option(None, help="Points to add directly."),
    amount_minor: int = typer.Option(None, help="Purchase amount in minor units (the earn rules apply)."),
    currency: str = typer.Option(None, help="Currency of the amount."),
    order_id: str = typer.Option(None, help="The order (a return reverses what it earned)."),
    key: str = typer.Option(None, help="Idempotency key."),
    fmt: str = FORMAT,
) -> None:
    """Earn points."""
    body = {"idempotency_key": _key(key), "channel": channel, "points": points, "amount_minor": amount_minor,
            "currency": currency, "order_id": order_id}  # fmt: skip
    with api() as a:
        entry = a.call("POST", f"/api/v1/loyalty/{profile_id}/earn", {k: v for k, v in body.items() if v is not None})
    if fmt == "json":
        dump(entry)
    else:
        console.print(f"+{entry['points']:,} points; balance {entry['balance_after']:,}, tier {entry['tier']}")


@app.command("burn")
def burn(
    profile_id: str,
    points: int,
    channel: str = typer.Option(..., help="Where the points are spent (store, web, app, ...)."),
    store: str = typer.Option(None, help="Store id."),
    key: str = typer.Option(None, help="Idempotency key."),
    fmt: str = FORMAT,
) -> None:
    """Spend points (refused when the balance is lower)."""
    body = {"idempotency_key": _key(key), "points": points, "channel": channel, "store_id": store}
    with api() as a:
        entry = a.call("POST", f"/api/v1/loyalty/{profile_id}/burn", {k: v for k, v in body.items() if v is not None})
    dump(entry) if fmt == "json" else console.print(f"{entry['points']:,} points; balance {entry['balance_after']:,}")


@app.command("adjust")
def adjust(
    profile_id: str,
    points: int = typer.Argument(..., help="Positive to add, negative to remove."),
    reason: str = typer.Option(..., help="Why (kept in the ledger)."),
    key: str = typer.Option(None, help="Idempotency key."),
    fmt: str = FORMAT,
) -> None:
    """A manual correction."""
    with api() as a:
        body = {"idempotency_key": _key(key), "points": points, "reason": reason}
        entry = a.call("POST", f"/api/v1/loyalty/{profile_id}/adjust", body)
    dump(entry) if fmt == "json" else console.print(f"{entry['points']:+,} points; balance {entry['balance_after']:,}")


@app.command("program")
def program(
    set_file: Path = typer.Option(None, "--set", exists=True, dir_okay=False, help="Replace it with this JSON file."),
    fmt: str = FORMAT,
) -> None:
    """Show (or replace) the program: points per currency unit, multipliers, tiers, expiry."""
    with api() as a:
        if set_file:
            try:
                config = json.loads(set_file.read_text())
            except ValueError as exc:
                raise fail(f"{set_file}: not JSON ({exc})") from exc
            result = a.call("PUT", "/api/v1/loyalty/program", config)
        else:
            result = a.call("GET", "/api/v1/loyalty/program")
    dump(result) if fmt == "json" else console.print_json(json.dumps(result))


@app.command("rewards")
def rewards(fmt: str = FORMAT) -> None:
    """The rewards catalogue."""
    with api() as a:
        items = a.call("GET", "/api/v1/loyalty/rewards")
    if fmt == "json":
        dump(items)
        return
    table = Table("id", "name", "points", "stock")
    for r in items:
        stock = "unlimited" if r["stock"] is None else str(r["stock"])
        table.add_row(r["id"], r["name"], f"{r['cost_points']:,}", stock)
    console.print(table)


@app.command("reward-add")
def reward_add(
    name: str,
    cost_points: int,
    stock: int = typer.Option(None, help="How many can be claimed (unlimited when omitted)."),
    fmt: str = FORMAT,
) -> None:
    """Add a reward to the catalogue."""
    body = {"name": name, "cost_points": cost_points, **({"stock": stock} if stock is not None else {})}
    with api() as a:
        reward = a.call("POST", "/api/v1/loyalty/rewards", body)
    dump(reward) if fmt == "json" else console.print(f"reward {reward['id']} {reward['name']}")


@app.command("claim")
def claim(
    profile_id: str,
    reward_id: str,
    channel: str = typer.Option(..., help="Where the reward is claimed."),
    key: str = typer.Option(None, help="Idempotency key."),
    fmt: str = FORMAT,
) -> None:
    """Spend points on a reward (a voucher usable once)."""
    with api() as a:
        got = a.call("POST", f"/api/v1/loyalty/{profile_id}/rewards/{reward_id}/claim",
                     {"idempotency_key": _key(key), "channel": channel})  # fmt: skip
    dump(got) if fmt == "json" else console.print(f"claim {got['id']} (use it once)")


@app.command("use")
def use(
    claim_id: str,
    channel: str = typer.Option(..., help="Where it is handed over."),
    store: str = typer.Option(None, help="Store id."),
    fmt: str = FORMAT,
) -> None:
    """Hand a claimed reward over (refused the second time)."""
    with api() as a:
        used = a.call("POST", f"/api/v1/loyalty/claims/{claim_id}/use",
                      {"channel": channel, **({"store_id": store} if store else {})})  # fmt: skip
    dump(used) if fmt == "json" else console.print(f"claim {claim_id} used")


@app.command("expire")
def expire(
    at: datetime = typer.Option(None, help="Expire what is due at this time (default now)."), fmt: str = FORMAT
) -> None:
    """Expire points whose time has come (run it daily)."""
    body = {"at": (at if at.tzinfo else at.replace(tzinfo=UTC)).isoformat()} if at else {}
    with api() as a:
        result: dict[str, Any] = a.call("POST", "/api/v1/loyalty/expire", body)
    dump(result) if fmt == "json" else console.print(f"{result['expired_lots']} lots expired")


_SUMMED = ("order_events", "earned", "points_earned", "reversed", "points_reversed", "expired_lots", "points_expired",
           "already_done", "ignored", "seconds")  # fmt: skip


_WHEN = "YYYY-MM-DD or ISO 8601; UTC unless it carries an offset."


@app.command("backfill")
def backfill(
    since: str = typer.Option(None, help="Earn for purchases from this time (default: the oldest). " + _WHEN),
    until: str = typer.Option(None, help="Earn for purchases before this time (default: now). " + _WHEN),
    fmt: str = FORMAT,
) -> None:
    """Earn points for past purchases as if the program had run then: each earn dated at its purchase, lots
    expiring from that date, returns reversed, tiers as they would be. Safe to run again (earns nothing twice)."""
    with api() as a:
        plan = a.call("POST", "/api/v1/loyalty/backfill", {"since": since, "until": until, "dry_run": True})
        # one request per calendar month with purchases, in order (each expires what came due by its end), so a
        # long history shows progress; the months together are the whole range
        months = [m["month"] for m in plan["months"]] or [None]
        total: dict[str, Any] = {"since": plan["since"], "until": plan["until"], **dict.fromkeys(_SUMMED, 0)}
        skipped: Counter[str] = Counter()
        with Progress(
            TextColumn("earning points for past purchases"), BarColumn(), MofNCompleteColumn(),
            TextColumn("order events"), TimeElapsedColumn(), console=err_console, transient=True,
            disable=fmt == "json",
        ) as bar:  # fmt: skip
            task = bar.add_task("backfill", total=plan["order_events"])
            for i, month in enumerate(months):
                start = plan["since"] if i == 0 else f"{month}-01T00:00:00+00:00"
                end = f"{months[i + 1]}-01T00:00:00+00:00" if i + 1 < len(months) else plan["until"]
                part = a.call("POST", "/api/v1/loyalty/backfill", {"since": start, "until": end})
                for key in _SUMMED:
                    total[key] += part[key]
                skipped.update(part["skipped"])
                total |= {"expired_until": part["expired_until"], "tiers": part["tiers"]}
                bar.update(task, advance=part["order_events"])
    total |= {"skipped": dict(skipped), "seconds": round(total["seconds"], 2)}
    if fmt == "json":
        dump(total)
        return
    console.print(
        f"{total['earned']:,} purchases earned {total['points_earned']:,} points, each dated at its purchase; "
        f"{total['reversed']:,} returns took back {total['points_reversed']:,}; {total['expired_lots']:,} lots "
        f"expired ({total['points_expired']:,} points); {total['already_done']:,} already done"
    )
    tiers = ", ".join(f"{name} {n:,}" for name, n in total["tiers"].items())
    console.print(f"accounts per tier: {tiers} [dim]({total['order_events']:,} order events, {total['seconds']} s)[/]")
    if skipped:
        console.print(f"[yellow]skipped[/]: {', '.join(f'{code} {n:,}' for code, n in skipped.items())}")
