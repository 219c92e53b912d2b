"""`accord offers`: create offers, generate and assign codes, validate and redeem coupons, the associate's view.

Every command goes through the HTTP API: to the running server when there is one, else to the same API run in
this process on the local stores (so the CLI and the API can never disagree).
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.table import Table

from accord.cli.context import console, fail, running_server, settings

app = typer.Typer(help="Offers and coupons: codes, assignment, validation, redemption.", no_args_is_help=True)


class Api:
    """A thin client that turns error bodies into clear CLI errors."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def call(self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None) -> Any:
        """The JSON answer of METHOD PATH, or a CLI error with the API's code and message."""
        response = self.client.request(method, path, json=body, params=params)
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
                message = f"{error['message']} ({error['code']})"
                for problem in error.get("problems", [])[1:]:
                    message += f"; {problem['message']} ({problem['code']})"
            except (ValueError, KeyError, TypeError):
                message = response.text[:500]
            raise fail(f"{response.status_code}: {message}")
        return response.json()


@contextmanager
def api() -> Iterator[Api]:
    """The running server's API, or the API served in this process on the local stores."""
    s = settings()
    client = running_server(s)
    if client is not None:
        with client:
            yield Api(client)
        return
    from litestar.testing import TestClient

    from accord.api.app import admin_token, create_app

    local = create_app(replace(s, processing=False))  # events wait in the journal for the next server
    logging.disable(logging.INFO)  # the in-process server's request log is noise on a terminal
    try:
        with TestClient(local) as test_client:
            test_client.headers["Authorization"] = f"Bearer {admin_token(s)}"
            yield Api(test_client)
    except httpx.HTTPError as exc:
        raise fail(str(exc)) from exc
    finally:
        logging.disable(logging.NOTSET)


def dump(data: Any) -> None:
    """JSON output (for --format json)."""
    console.print_json(json.dumps(data, default=str))


FORMAT = typer.Option("text", "--format", help="text or json")


@app.command("create")
def create(
    name: str = typer.Argument(..., help="Offer name shown to associates and in reports."),
    code: str = typer.Option(None, help="The shared code (generated when omitted)."),
    unique: bool = typer.Option(False, "--unique", help="Unique single-use codes (generate them with `codes`)."),
    percent: float = typer.Option(None, help="Percent off the basket (e.g. 10)."),
    amount_minor: int = typer.Option(None, help="Amount off in minor units (needs --currency)."),
    currency: str = typer.Option(None, help="ISO 4217 currency of amounts and minimum basket."),
    starts: datetime = typer.Option(None, help="Start (ISO 8601; UTC unless an offset is given)."),
    ends: datetime = typer.Option(None, help="End (ISO 8601; UTC unless an offset is given)."),
    channel: list[str] = typer.Option(None, help="Valid channel (repeat); any when omitted."),
    store: list[str] = typer.Option(None, help="Valid store id (repeat); any when omitted."),
    segment: list[str] = typer.Option(None, help="Customer segment name (repeat); anyone when omitted."),
    min_basket_minor: int = typer.Option(None, help="Minimum basket in minor units."),
    per_customer_limit: int = typer.Option(None, help="Uses per customer."),
    fmt: str = FORMAT,
) -> None:
    """Create an offer."""
    body: dict[str, Any] = {"name": name, "code_policy": "unique" if unique else "shared", "code": code}
    if amount_minor is not None:
        body |= {"discount_kind": "amount", "discount_value": amount_minor}
    elif percent is not None:
        body |= {"discount_kind": "percent", "discount_value": round(percent * 100)}
    for key, when in (("starts_at", starts), ("ends_at", ends)):
        if when is not None:
            body[key] = (when if when.tzinfo else when.replace(tzinfo=_utc())).isoformat()
    body |= {
        "currency": currency,
        "channels": channel or None,
        "stores": store or None,
        "segments": segment or None,
        "min_basket_minor": min_basket_minor,
        "per_customer_limit": per_customer_limit,
    }
    with api() as a:
        offer = a.call("POST", "/api/v1/offers", {k: v for k, v in body.items() if v is not None})
    if fmt == "json":
        dump(offer)
    else:
        code_text = f"  code {offer['code']}" if offer["code"] else ""
        console.print(f"offer {offer['id']} [bold]{offer['name']}[/]{code_text}")


def _utc() -> Any:
    from datetime import UTC

    return UTC


@app.command("list")
def list_offers(status: str = typer.Option(None, help="active, paused or ended"), fmt: str = FORMAT) -> None:
    """List offers, newest first."""
    with api() as a:
        offers = a.call("GET", "/api/v1/offers", params={"status": status} if status else None)
    if fmt == "json":
        dump(offers)
        return
    table = Table("id", "name", "codes", "discount", "valid", "status")
    for o in offers:
        discount = f"{o['discount_value'] / 100:g}%" if o["discount_kind"] == "percent" else f"{o['discount_value']}"
        valid = f"{(o['starts_at'] or '')[:10]}..{(o['ends_at'] or '')[:10]}"
        table.add_row(o["id"], o["name"], o["code_policy"], discount, valid, o["status"])
    console.print(table)


@app.command("show")
def show(offer_id: str, fmt: str = FORMAT) -> None:
    """One offer with its code and redemption counts."""
    with api() as a:
        offer = a.call("GET", f"/api/v1/offers/{offer_id}")
    if fmt == "json":
        dump(offer)
    else:
        for key, value in offer.items():
            console.print(f"{key:>20}  {value}")


@app.command("status")
def status(
    offer_id: str, new_status: str = typer.Argument(..., help="active, paused or ended"), fmt: str = FORMAT
) -> None:
    """Pause, resume (active) or end an offer."""
    with api() as a:
        offer = a.call("POST", f"/api/v1/offers/{offer_id}/status", {"status": new_status})
    dump(offer) if fmt == "json" else console.print(f"offer {offer_id} is {offer['status']}")


@app.command("codes")
def codes(
    offer_id: str,
    count: int = typer.Option(..., help="How many unique single-use codes to generate."),
    length: int = typer.Option(10, help="Code length (6..32)."),
    output: Path = typer.Option(None, help="Write the codes to this file, one per line."),
    fmt: str = FORMAT,
) -> None:
    """Generate unique single-use codes in bulk."""
    with console.status(f"generating {count:,} codes"), api() as a:
        made = a.call("POST", f"/api/v1/offers/{offer_id}/codes", {"count": count, "length": length})
    if output:
        output.write_text("\n".join(made["codes"]) + "\n")
    if fmt == "json":
        dump(made if not output else {**made, "codes": str(output)})
    elif output:
        console.print(f"{made['count']:,} codes written to {output}")
    else:
        console.print("\n".join(made["codes"]))


@app.command("assign")
def assign(
    offer_id: str,
    profile_id: str,
    code: str = typer.Option(None, help="A specific code (a free one of a unique-code offer otherwise)."),
    message_id: str = typer.Option(None, help="The message/delivery that delivered it."),
    via: str = typer.Option(None, help="The channel it was delivered on (push, sms, email, ...)."),
    note: str = typer.Option(None, help="Why or when it was sent (shown to associates)."),
    fmt: str = FORMAT,
) -> None:
    """Give an offer (a code) to a customer."""
    body = {"profile_id": profile_id, "code": code, "message_id": message_id, "delivery_channel": via, "note": note}
    with api() as a:
        given = a.call("POST", f"/api/v1/offers/{offer_id}/assign", {k: v for k, v in body.items() if v is not None})
    dump(given) if fmt == "json" else console.print(f"code {given['code']} given to {profile_id}")


def _coupon(code: str, channel: str, store: str | None, profile: str | None, basket: int | None, currency: str | None
            ) -> dict[str, Any]:  # fmt: skip
    body = {"code": code, "channel": channel, "store_id": store, "profile_id": profile, "basket_minor": basket,
            "currency": currency}  # fmt: skip
    return {k: v for k, v in body.items() if v is not None}


@app.command("validate")
def validate(
    code: str,
    channel: str = typer.Option(..., help="store, web, app, call_center, ..."),
    store: str = typer.Option(None, help="Store id (for store-limited offers)."),
    profile: str = typer.Option(None, help="Customer profile id."),
    basket_minor: int = typer.Option(None, help="Basket total in minor units."),
    currency: str = typer.Option(None, help="Basket currency."),
    fmt: str = FORMAT,
) -> None:
    """Can this code be used here and now? Says why, or why not."""
    with api() as a:
        body = _coupon(code, channel, store, profile, basket_minor, currency)
        verdict = a.call("POST", "/api/v1/coupons/validate", body)
    if fmt == "json":
        dump(verdict)
        return
    if verdict["valid"]:
        name, discount = verdict["offer_name"], verdict["discount_minor"]
        console.print(f"[green]valid[/] {verdict['code']} ({name}); discount {discount}")
        for reason in verdict["reasons"]:
            console.print(f"  - {reason}")
    else:
        console.print(f"[red]not valid[/] {verdict['code']}")
        for problem in verdict["problems"]:
            console.print(f"  - {problem['message']} ({problem['code']})")


@app.command("redeem")
def redeem(
    code: str,
    channel: str = typer.Option(..., help="store, web, app, call_center, ..."),
    key: str = typer.Option(None, help="Idempotency key (a retry with the same key gets the same answer)."),
    store: str = typer.Option(None, help="Store id."),
    profile: str = typer.Option(None, help="Customer profile id."),
    basket_minor: int = typer.Option(None, help="Basket total in minor units."),
    currency: str = typer.Option(None, help="Basket currency."),
    order_id: str = typer.Option(None, help="The order the coupon is used on."),
    fmt: str = FORMAT,
) -> None:
    """Use a code once."""
    body = _coupon(code, channel, store, profile, basket_minor, currency)
    body["idempotency_key"] = key or "cli-" + secrets.token_hex(8)
    if order_id:
        body["order_id"] = order_id
    with api() as a:
        done = a.call("POST", "/api/v1/coupons/redeem", body)
    if fmt == "json":
        dump(done)
    else:
        again = " (already redeemed with this key)" if done.get("replayed") else ""
        console.print(f"redeemed {done['code']}: redemption {done['id']}, discount {done['discount_minor']}{again}")


@app.command("active")
def active(
    profile_id: str,
    store: str = typer.Option(None, help="Store id of the till."),
    channel: str = typer.Option("store", help="Channel (store for the till)."),
    fmt: str = FORMAT,
) -> None:
    """Offers a customer can use at this store now, and why (the associate's view)."""
    params = {"profile_id": profile_id, "channel": channel, **({"store_id": store} if store else {})}
    with api() as a:
        found = a.call("GET", "/api/v1/coupons/active", params=params)
    if fmt == "json":
        dump(found)
        return
    if not found["offers"]:
        console.print("no active offers here")
    for item in found["offers"]:
        console.print(f"[bold]{item['offer']['name']}[/]  code {item['code']}")
        for reason in item["why"]:
            console.print(f"  - {reason}")
