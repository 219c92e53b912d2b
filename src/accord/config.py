"""Settings read from ACCORD_* environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    """Everything Accord reads from its environment, resolved to concrete values."""

    home: Path
    state_url: str
    events_url: str
    admin_token: str | None
    default_region: str = "PL"
    host: str = "127.0.0.1"
    port: int = 8000
    identity_limits: dict[str, int] = field(default_factory=dict)
    identity_priority: tuple[str, ...] = ()
    blocked_values: tuple[str, ...] = ()
    resolver: str = "process"
    processing: bool = True
    processing_share: float = 0.1  # of the SQLite write lock the processing worker keeps while the intake waits
    gc_settle: bool = True  # server and worker freeze their start-up heap (accord/heap.py); off only to compare

    @property
    def events_path(self) -> Path:
        """File path of the embedded DuckDB event store."""
        url = self.events_url
        if url.startswith("duckdb:///"):
            return Path(url.removeprefix("duckdb:///"))
        raise ValueError(f"not a DuckDB events URL: {url}")

    @property
    def server_file(self) -> Path:
        """File where a running server records its address, so CLI commands can find it."""
        return self.home / "server.json"


def _parse_limits(text: str) -> dict[str, int]:
    limits: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        limits[name.strip()] = int(value)
    return limits


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Build settings from the environment (or the mapping given, for tests)."""
    env = dict(os.environ) if env is None else env
    home = Path(env.get("ACCORD_HOME", "./.accord")).expanduser().resolve()
    state_url = env.get("ACCORD_STATE_URL") or f"sqlite:///{home / 'state.sqlite'}"
    events_url = env.get("ACCORD_EVENTS_URL") or f"duckdb:///{home / 'events.duckdb'}"
    priority = tuple(p.strip() for p in env.get("ACCORD_IDENTITY_PRIORITY", "").split(",") if p.strip())
    blocked = tuple(v.strip() for v in env.get("ACCORD_IDENTITY_BLOCKED", "").split(",") if v.strip())
    return Settings(
        home=home,
        state_url=state_url,
        events_url=events_url,
        admin_token=env.get("ACCORD_ADMIN_TOKEN") or None,
        default_region=env.get("ACCORD_DEFAULT_REGION", "PL").upper(),
        host=env.get("ACCORD_HOST", "127.0.0.1"),
        port=int(env.get("ACCORD_PORT", "8000")),
        identity_limits=_parse_limits(env.get("ACCORD_IDENTITY_LIMITS", "")),
        identity_priority=priority,
        blocked_values=blocked,
        resolver=env.get("ACCORD_RESOLVER", "process"),
        processing=env.get("ACCORD_PROCESSING", "on").lower() not in ("off", "0", "false", "no"),
        processing_share=_share(env.get("ACCORD_PROCESSING_SHARE", "0.1")),
        gc_settle=env.get("ACCORD_GC_SETTLE", "on").lower() not in ("off", "0", "false", "no"),
    )


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 < value <= 1.0:
        raise ValueError(f"ACCORD_PROCESSING_SHARE must be a number above 0 and at most 1, not {text!r}")
    return value
