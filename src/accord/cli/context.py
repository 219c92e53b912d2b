"""How a CLI command reaches Accord: the running server over HTTP, or the stores directly when none runs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import Any

import httpx
import typer
from rich.console import Console

from accord.api.app import admin_token
from accord.config import Settings, load_settings
from accord.platform import Platform, open_platform

console = Console()


class Format(StrEnum):
    """Output format of a command."""

    text = "text"
    json = "json"


err_console = Console(stderr=True)


def settings() -> Settings:
    """Settings from the environment."""
    return load_settings()


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print a clear error (never a traceback) and return the exit to raise."""
    err_console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


def running_server(s: Settings) -> httpx.Client | None:
    """A client for the server recorded in ACCORD_HOME/server.json, if it answers; else None."""
    path = s.server_file
    if not path.exists():
        return None
    try:
        url = json.loads(path.read_text())["url"]
    except (ValueError, KeyError):
        return None
    try:
        if httpx.get(f"{url}/api/v1/health", timeout=2.0).status_code != 200:
            return None
    except httpx.HTTPError:
        return None
    return httpx.Client(base_url=url, timeout=120.0, headers={"Authorization": f"Bearer {admin_token(s)}"})


@contextmanager
def local_platform(s: Settings, read_only: bool = False) -> Iterator[Platform]:
    """Open the stores in this process (only when no server owns the event store)."""
    try:
        platform = open_platform(s, read_only_events=read_only)
    except Exception as exc:
        if "lock" in str(exc).lower():
            raise fail(
                f"the event store {s.events_url} is in use by another process; "
                "is a server running under a different ACCORD_HOME?"
            ) from exc
        raise
    try:
        yield platform
    finally:
        platform.close()


def api_result(response: httpx.Response) -> Any:
    """The JSON of a successful response; a clear CLI error otherwise."""
    if response.status_code >= 400:
        try:
            error = response.json()["error"]
            message = f"{error['message']} ({error['code']})"
        except (ValueError, KeyError, TypeError):
            message = response.text[:500]
        raise fail(f"server answered {response.status_code}: {message}")
    return response.json()
