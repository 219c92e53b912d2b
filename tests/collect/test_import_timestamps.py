"""Imported history keeps its own times: a file's sentAt says nothing about today's clock (no skew correction)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from accord.collect.importers import import_events
from accord.collect.imports import JournalSink
from accord.collect.segment import SourceInfo
from accord.collect.sources import ensure_source
from accord.config import load_settings
from accord.platform import Platform, open_platform


@pytest.fixture
def plat(tmp_path: Path) -> Iterator[Platform]:
    platform = open_platform(load_settings({"ACCORD_HOME": str(tmp_path / "home")}))
    yield platform
    platform.close()


def test_imported_events_keep_their_timestamps_even_with_sent_at(plat: Platform, tmp_path: Path) -> None:
    # an export of a year-old session, as Segment libraries wrote it (sentAt = when the library sent it)
    lines = [
        {"type": "page", "name": "Home", "anonymousId": "a1", "messageId": "p1",
         "timestamp": "2025-11-01T10:00:00Z", "sentAt": "2025-11-01T10:00:05Z"},
        {"type": "track", "event": "Order Completed", "userId": "u1", "anonymousId": "a1", "messageId": "o1",
         "timestamp": "2025-11-01T10:07:00Z", "sentAt": "2025-11-01T10:07:00Z", "properties": {"revenue": 10}},
    ]  # fmt: skip
    path = tmp_path / "history.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    source = ensure_source(plat.state, "history", "web")
    report = import_events(path, JournalSink(plat.journal, SourceInfo(source.id, source.channel)))
    assert report.accepted == 2
    assert plat.processor.drain()
    times = dict(plat.events.query("SELECT message_id, timestamp FROM events ORDER BY message_id"))
    assert times == {
        "o1": datetime(2025, 11, 1, 10, 7, tzinfo=UTC),
        "p1": datetime(2025, 11, 1, 10, 0, tzinfo=UTC),
    }
