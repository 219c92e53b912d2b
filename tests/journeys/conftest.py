"""Journeys tests: an injectable clock and a sender that records what journeys asked messaging to send."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from accord.journeys.engine import SendRequest
from accord.platform import Platform

T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)


@dataclass
class Clock:
    """Time that moves only when the test says so."""

    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class RecordingSender:
    """Stands in for messaging: keeps each request (and rolls back with the transaction that made it)."""

    sent: list[SendRequest] = field(default_factory=list)

    def __call__(self, conn: sa.Connection, request: SendRequest) -> str:
        pending = conn.info.setdefault("sent", [])
        pending.append(request)
        self.sent.append(request)
        return f"queued via {request.channels[0]}"


@pytest.fixture
def clock(platform: Platform) -> Clock:
    c = Clock()
    platform.journeys.clock = c
    return c


@pytest.fixture
def sender(platform: Platform) -> Iterator[RecordingSender]:
    s = RecordingSender()
    platform.journeys.sender = s
    yield s
