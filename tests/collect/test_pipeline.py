"""Journal -> resolver -> event store, on SQLite and on PostgreSQL state stores."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from accord.collect.intake import parse_request
from accord.collect.sources import add_source
from accord.identity import queries
from accord.platform import Platform
from accord.profiles import service as profiles


def accept(platform: Platform, key: str, messages: list[dict], kind: str = "batch") -> None:
    body = json.dumps({"batch": messages} if kind == "batch" else messages[0]).encode()
    auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    intake = parse_request(body, None, auth, kind, platform.lookup_source, datetime.now(UTC))
    assert not intake.rejects, intake.rejects
    platform.journal.append(intake.journal_batch())


def test_messages_flow_into_the_event_store_once(platform: Platform) -> None:
    source = add_source(platform.state, "web", "web")
    messages = [
        {
            "type": "identify",
            "userId": "u1",
            "anonymousId": "a1",
            "messageId": "m1",
            "traits": {"email": "x@example.com"},
            "timestamp": "2026-05-01T10:00:00Z",
        },
        {
            "type": "track",
            "event": "Order Completed",
            "anonymousId": "a1",
            "messageId": "m2",
            "properties": {"revenue": 10, "currency": "EUR"},
            "timestamp": "2026-05-01T10:05:00Z",
        },
    ]
    accept(platform, source.write_key, messages)
    accept(platform, source.write_key, messages)  # a client retry
    accept(platform, source.write_key, [{"event": "Viewed", "userId": "u1", "messageId": "m3"}], kind="track")
    assert platform.processor.drain()
    assert platform.events.count_events() == 3
    pid = profiles.resolve(platform.state, platform.rules, "email:X@Example.com")
    assert pid == profiles.resolve(platform.state, platform.rules, "anonymous_id:a1")
    page = platform.events.timeline(pid or "")
    assert [e["message_id"] for e in page.events][:2] == ["m1", "m2"]
    stats = platform.stats()
    assert stats["accepted_messages"] == 5 and stats["events"] == 3 and stats["processing_lag"] == 0


def test_a_crash_between_identity_and_load_replays_without_loss_or_double_count(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = add_source(platform.state, "web", "web")
    accept(
        platform,
        source.write_key,
        [{"type": "track", "event": f"E{i}", "userId": f"u{i % 3}", "messageId": f"m{i}"} for i in range(30)],
    )
    real_load = platform.events.load

    def crash(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("power cut")

    monkeypatch.setattr(platform.events, "load", crash)
    with pytest.raises(RuntimeError):
        platform.processor.run_once()  # ids claimed and identities resolved, but nothing loaded
    monkeypatch.setattr(platform.events, "load", real_load)
    assert platform.processor.drain()
    assert platform.events.count_events() == 30
    assert queries.count_profiles(platform.state) == 3


def test_unmerge_moves_the_events_in_the_event_store(platform: Platform) -> None:
    source = add_source(platform.state, "web", "web")
    accept(
        platform,
        source.write_key,
        [
            {"type": "page", "anonymousId": "shared-tablet", "messageId": "p1", "timestamp": "2026-05-01T10:00:00Z"},
            {
                "type": "identify",
                "userId": "u1",
                "anonymousId": "shared-tablet",
                "messageId": "i1",
                "timestamp": "2026-05-01T10:01:00Z",
            },
        ],
    )
    assert platform.processor.drain()
    pid = profiles.resolve(platform.state, platform.rules, "user_id:u1") or ""
    assert platform.events.profile_summary(pid)["event_count"] == 2
    result = profiles.unmerge(platform.graph, pid, "anonymous_id:shared-tablet", "tablet is shared")
    platform.processor.sync_identity()
    assert platform.events.profile_summary(result["new_profile_id"])["event_count"] == 1
    assert platform.events.profile_summary(pid)["event_count"] == 1


def test_listeners_hear_of_every_loaded_slice_and_a_failing_one_does_not_stop_loading(platform: Platform) -> None:
    source = add_source(platform.state, "web", "web")
    heard: list[tuple[int, int]] = []

    def broken(after: int, upto: int) -> None:
        raise RuntimeError("listener bug")

    platform.processor.add_listener(broken)
    platform.processor.add_listener(lambda after, upto: heard.append((after, upto)))
    accept(platform, source.write_key, [{"event": "A", "userId": "u1", "messageId": "l1"}], kind="track")
    accept(platform, source.write_key, [{"event": "B", "userId": "u1", "messageId": "l2"}], kind="track")
    assert platform.processor.drain()
    assert platform.events.count_events() == 2
    covered = [seq for after, upto in heard for seq in range(after + 1, upto + 1)]
    assert covered == [1, 2]


def test_a_domain_emits_events_in_its_own_transaction(platform: Platform) -> None:
    import sqlalchemy as sa

    from accord.collect.emit import emit
    from accord.collect.errors import CollectError

    with platform.state.begin() as conn:
        ids = emit(
            conn,
            platform.journal,
            "accord-test",
            "store",
            [{"event": "Store Entered", "userId": "u9", "properties": {"store_id": "S1"}}],
        )
    with pytest.raises(RuntimeError), platform.state.begin() as conn:  # rolled back with the domain change
        emit(conn, platform.journal, "accord-test", "store", [{"event": "Store Exited", "userId": "u9"}])
        raise RuntimeError("domain change failed")
    with pytest.raises(CollectError, match="invalid"), platform.state.begin() as conn:
        emit(conn, platform.journal, "accord-test", "store", [{"type": "track", "userId": "u9"}])  # no event name
    assert platform.processor.drain()
    pid = profiles.resolve(platform.state, platform.rules, "user_id:u9")
    events = platform.events.timeline(pid or "").events
    assert [(e["event"], e["channel"], e["message_id"]) for e in events] == [("Store Entered", "store", ids[0])]
    with platform.state.connect() as conn:
        assert conn.execute(sa.text("select count(*) from sources where name = 'accord-test'")).scalar() == 1
