"""Sources: each sending system has a name, a write key and a default channel."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from accord.collect.channels import CHANNELS
from accord.collect.errors import CollectError
from accord.collect.tables import sources
from accord.storage import new_id, utcnow

SOURCE_CHANNELS = (*CHANNELS, "auto")


@dataclass(frozen=True)
class Source:
    """A registered sender of events."""

    id: str
    name: str
    write_key: str
    channel: str
    created_at: datetime


def _row(row: sa.Row) -> Source:
    return Source(row.id, row.name, row.write_key, row.channel, row.created_at)


def add_source(engine: sa.Engine, name: str, channel: str, write_key: str | None = None) -> Source:
    """Register a source and return it with its (new) write key."""
    name = name.strip()
    if not name:
        raise CollectError("a source needs a name", code="invalid_source")
    if channel not in SOURCE_CHANNELS:
        raise CollectError(
            f"unknown channel {channel!r}; use one of {', '.join(SOURCE_CHANNELS)}", code="invalid_channel"
        )
    source = Source(new_id(), name, write_key or "wk_" + secrets.token_urlsafe(24), channel, utcnow())
    with engine.begin() as conn:
        if conn.execute(sa.select(sources.c.id).where(sources.c.name == name)).first():
            raise CollectError(f"a source named {name!r} exists already", code="source_exists", status=409)
        conn.execute(
            sources.insert().values(
                id=source.id,
                name=source.name,
                write_key=source.write_key,
                channel=source.channel,
                created_at=source.created_at,
            )
        )
    return source


def list_sources(engine: sa.Engine) -> list[Source]:
    """All sources, oldest first."""
    with engine.connect() as conn:
        return [_row(r) for r in conn.execute(sa.select(sources).order_by(sources.c.created_at, sources.c.id))]


def source_by_key(engine: sa.Engine, write_key: str) -> Source | None:
    """The source owning a write key."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(sources).where(sources.c.write_key == write_key)).first()
    return _row(row) if row else None


def source_by_id(engine: sa.Engine, source_id: str) -> Source | None:
    """The source with this id."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(sources).where(sources.c.id == source_id)).first()
    return _row(row) if row else None


def source_by_name(engine: sa.Engine, name: str) -> Source | None:
    """The source with this name."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(sources).where(sources.c.name == name)).first()
    return _row(row) if row else None


def ensure_source(engine: sa.Engine, name: str, channel: str) -> Source:
    """The named source, created with CHANNEL if it does not exist (used by file imports)."""
    return source_by_name(engine, name) or add_source(engine, name, channel)
