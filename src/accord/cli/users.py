"""`accord users`: accounts of the web app (add, list, set language); passwords are read from stdin."""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
import typer
from rich.table import Table

from accord.cli.context import console, fail, settings
from accord.storage import create_state_engine, migrate
from accord.users import service as users
from accord.users.roles import Role

app = typer.Typer(help="Users of the web app: marketers, analysts, store associates, admins.", no_args_is_help=True)


@contextmanager
def _state() -> Iterator[sa.Engine]:
    """The state store alone (safe while a server runs: the server owns only the event store exclusively)."""
    engine = create_state_engine(settings().state_url)
    try:
        migrate(engine)
        yield engine
    finally:
        engine.dispose()


def _read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("password: ")
        if getpass.getpass("again: ") != first:
            raise fail("the passwords differ")
        return first
    return sys.stdin.readline().rstrip("\r\n")


@app.command("add")
def add(
    email: str = typer.Argument(..., help="The user's email (their login)."),
    role: Role = typer.Option(..., "--role", help="admin, marketer, analyst (read only) or associate (one store)."),
    store: str = typer.Option(None, "--store", help="STORE_ID whose screen an associate uses (associates only)."),
    locale: str = typer.Option(None, "--locale", help="UI language: en or pl (default: the browser's)."),
    fmt: str = typer.Option("text", "--format", help="text or json."),
) -> None:
    """Add a user; the password is read from stdin (one line), or asked twice on a terminal."""
    password = _read_password()
    with _state() as engine:
        try:
            user = users.add_user(engine, email, password, role.value, store, locale)
        except users.UserError as exc:
            raise fail(exc.message) from exc
    data = {"id": user.id, "email": user.email, "role": user.role.value, "store_id": user.store_id}
    if fmt == "json":
        console.print_json(json.dumps(data))
    else:
        console.print(f"added {user.email} ({user.role.value}{' at ' + user.store_id if user.store_id else ''})")


@app.command("list")
def list_(fmt: str = typer.Option("text", "--format", help="text or json.")) -> None:
    """List users with their roles and stores."""
    with _state() as engine:
        rows = users.list_users(engine)
    data = [
        {"id": u.id, "email": u.email, "role": u.role.value, "store_id": u.store_id, "locale": u.locale} for u in rows
    ]
    if fmt == "json":
        console.print_json(json.dumps(data))
        return
    table = Table("email", "role", "store", "language")
    for u in data:
        table.add_row(u["email"], u["role"], u["store_id"] or "", u["locale"] or "browser")
    console.print(table)
