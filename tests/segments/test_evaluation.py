"""Full, incremental and timed evaluation on a real platform (SQLite and PostgreSQL state, DuckDB events)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accord.collect.intake import parse_request
from accord.collect.sources import add_source
from accord.platform import Platform, open_platform
from accord.profiles import service as profiles
from accord.segments import service
from accord.segments.engines import DuckDBEngine
from accord.segments.rules import parse_documents

from ..conftest import make_settings

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)

LAPSED = """
name: lapsed-store-buyers
rule:
  all:
    - trait: country
      in: [PL, DK]
    - event: Order Completed
      channel: store
      within: 365d
      count: {gte: 2}
    - not:
        event: Order Completed
        within: 60d
"""


def send(platform: Platform, key: str, messages: list[dict[str, Any]]) -> None:
    body = json.dumps({"batch": messages}).encode()
    auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    intake = parse_request(body, None, auth, "batch", platform.lookup_source, datetime.now(UTC))
    assert not intake.rejects, intake.rejects
    platform.journal.append(intake.journal_batch())


def order(user: str, at: datetime, mid: str, channel: str = "store") -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Order Completed",
        "userId": user,
        "messageId": mid,
        "timestamp": at.isoformat(),
        "context": {"channel": channel},
        "properties": {"order_id": mid, "revenue": 10, "currency": "PLN"},
    }


def use_clock(platform: Platform, now: datetime) -> None:
    platform.segments.clock = lambda: now


def test_membership_follows_events_and_is_on_the_timeline(platform: Platform) -> None:
    pos = add_source(platform.state, "pos", "store")
    use_clock(platform, T0)
    send(platform, pos.write_key, [
        {"type": "identify", "userId": "ann", "messageId": "i1", "traits": {"country": "PL"},
         "timestamp": (T0 - timedelta(days=200)).isoformat()},
        order("ann", T0 - timedelta(days=150), "o1"),
        order("ann", T0 - timedelta(days=90), "o2"),
        {"type": "identify", "userId": "bob", "messageId": "i2", "traits": {"country": "GB"},
         "timestamp": (T0 - timedelta(days=200)).isoformat()},
        order("bob", T0 - timedelta(days=150), "o3"),
        order("bob", T0 - timedelta(days=90), "o4"),
    ])  # fmt: skip
    assert platform.processor.drain()
    definition = parse_documents(LAPSED, "segment")[0]
    engine = DuckDBEngine(platform.events)
    result = service.apply_segment(platform.state, engine, platform.journal, definition, T0)
    assert (result["size"], result["entered"]) == (1, 1)
    ann = profiles.resolve(platform.state, platform.rules, "user_id:ann")
    assert service.member_ids(platform.state, "lapsed-store-buyers") == [ann]

    # a purchase at a till moves ann out, incrementally
    send(platform, pos.write_key, [order("ann", T0 - timedelta(minutes=1), "o5")])
    assert platform.processor.drain()
    assert service.member_ids(platform.state, "lapsed-store-buyers") == []
    # bob moves to Denmark: in
    send(platform, pos.write_key, [{"type": "identify", "userId": "bob", "messageId": "i3", "traits": {"country": "DK"},
                                    "timestamp": T0.isoformat()}])  # fmt: skip
    assert platform.processor.drain()
    bob = profiles.resolve(platform.state, platform.rules, "user_id:bob")
    assert service.member_ids(platform.state, "lapsed-store-buyers") == [bob]

    feed = service.membership_changes_since(platform.state, 0, 100)
    assert [(c.profile_id, c.change) for c in feed] == [(ann, "entered"), (ann, "exited"), (bob, "entered")]
    assert [c.seq for c in service.membership_changes_since(platform.state, feed[0].seq, 1)] == [feed[1].seq]
    sizes = [h["size"] for h in service.size_history(platform.state, "lapsed-store-buyers")]
    assert sizes == [1, 0, 1]
    assert platform.processor.drain()  # the Segment Entered/Exited events themselves
    timeline = platform.events.timeline(ann or "").events
    assert [
        (e["event"], e["raw"]["properties"]["segment"]) for e in timeline if (e["event"] or "").startswith("Segment")
    ] == [
        ("Segment Entered", "lapsed-store-buyers"),
        ("Segment Exited", "lapsed-store-buyers"),
    ]
    assert service.segments_of(platform.state, bob or "") == ["lapsed-store-buyers"]

    # time alone: 300 days later bob's store orders fall out of the 365-day window
    uses = parse_documents("name: uses-lapsed\nrule: {segment: lapsed-store-buyers}", "segment")[0]
    service.apply_segment(platform.state, engine, platform.journal, uses, T0)
    with pytest.raises(service.SegmentInUse, match="used by uses-lapsed"):
        service.delete_segment(platform.state, "lapsed-store-buyers")
    service.delete_segment(platform.state, "uses-lapsed")

    use_clock(platform, T0 + timedelta(days=300))
    platform.segments.tick()
    assert service.member_ids(platform.state, "lapsed-store-buyers") == []
    assert service.list_segments(platform.state)[0]["size"] == 0


def test_merges_move_membership_to_the_surviving_profile(sqlite_platform: Platform) -> None:
    platform = sqlite_platform
    web = add_source(platform.state, "web", "web")
    use_clock(platform, T0)
    definition = parse_documents("name: cart\nrule: {event: Product Added}", "segment")[0]
    engine = DuckDBEngine(platform.events)
    service.apply_segment(platform.state, engine, platform.journal, definition, T0)
    added = {"type": "track", "event": "Product Added", "anonymousId": "anon-1", "messageId": "a1"}
    send(platform, web.write_key, [{**added, "timestamp": T0.isoformat()}])
    assert platform.processor.drain()
    anon = profiles.resolve(platform.state, platform.rules, "anonymous_id:anon-1")
    assert service.member_ids(platform.state, "cart") == [anon]
    send(platform, web.write_key, [{"type": "identify", "userId": "zoe", "messageId": "z1", "timestamp": T0.isoformat(),
                                    "traits": {"email": "zoe@example.com"}}])  # fmt: skip
    assert platform.processor.drain()
    send(platform, web.write_key, [{"type": "alias", "userId": "zoe", "previousId": "anon-1", "messageId": "z2",
                                    "timestamp": T0.isoformat()}])  # fmt: skip
    assert platform.processor.drain()
    zoe = profiles.resolve(platform.state, platform.rules, "user_id:zoe")
    assert zoe is not None
    full = service.compute_members(platform.state, engine, definition, T0)
    assert set(service.member_ids(platform.state, "cart")) == full == {zoe}


# ---- incremental == full, for any sequence of events ---------------------------------------------------------

USERS = ["u1", "u2", "u3", "u4"]
event_strategy = st.one_of(
    st.builds(lambda u, c, d: ("order", u, c, d), st.sampled_from(USERS), st.sampled_from(["store", "web"]),
              st.integers(0, 400)),
    st.builds(lambda u, c, d: ("identify", u, c, d), st.sampled_from(USERS), st.sampled_from(["PL", "DK", "GB"]),
              st.integers(0, 400)),
    st.builds(lambda u, c, d: ("view", u, c, d), st.sampled_from(USERS), st.sampled_from(["Shoes", "Bags"]),
              st.integers(0, 30)),
    st.builds(lambda u, a, d: ("alias", u, a, d), st.sampled_from(USERS), st.sampled_from(["a1", "a2"]),
              st.integers(0, 30)),
)  # fmt: skip

RULES = [
    LAPSED,
    "name: viewers\nrule: {event: Product Viewed, where: {category: Shoes}, within: 14d}",
    "name: big\nrule: {all: [{computed: orders, gte: 2}, {not: {segment: viewers}}]}",
    "name: recent-web\nrule: {all: [{event: Order Completed, channel: web, last: {within: 30d}}, "
    "{computed: lifetime_revenue, gte: 2000}]}",
]


def _message(item: tuple[str, str, str, int], i: int) -> dict[str, Any]:
    kind, user, arg, days = item
    at = (T0 - timedelta(days=days)).isoformat()
    if kind == "order":
        return order(user, T0 - timedelta(days=days), f"m{i}", channel=arg)
    if kind == "identify":
        return {"type": "identify", "userId": user, "messageId": f"m{i}", "traits": {"country": arg}, "timestamp": at}
    if kind == "view":
        return {"type": "track", "event": "Product Viewed", "anonymousId": f"{user}-anon", "messageId": f"m{i}",
                "properties": {"category": arg}, "timestamp": at}  # fmt: skip
    return {"type": "alias", "userId": user, "previousId": f"{arg}", "messageId": f"m{i}", "timestamp": at}


@pytest.mark.parametrize(
    ("subset", "staged", "compact"),
    [(True, False, False), (False, False, True), (True, True, True)],
    ids=["touched-events", "restricted-daily-tables-compacted", "staged-slices-compacted"],
)
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(st.lists(event_strategy, min_size=1, max_size=5), min_size=1, max_size=5))
def test_incremental_membership_equals_full_evaluation(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    subset: bool,
    staged: bool,
    compact: bool,
    batches: list[list[Any]],
) -> None:
    """Incremental evaluation (the touched profiles' events read once, the DuckDB default, two profiles per query
    here; or the compiled query restricted to them over the daily tables; or, as in the server, slices staged by
    the processor's background loop and evaluated before the slow writer has written them) keeps exactly the
    members of a full evaluation; COMPACT: the daily tables are compacted after every write."""
    import secrets
    import time

    monkeypatch.setattr(service, "SUBSET_CHUNK", 2)

    platform = open_platform(make_settings(tmp_path / secrets.token_hex(4)))
    try:
        use_clock(platform, T0)
        runtime_engine = platform.segments.engine
        assert isinstance(runtime_engine, DuckDBEngine) and runtime_engine.subset  # the default
        runtime_engine.subset = subset
        if compact:
            monkeypatch.setattr(platform.events, "compact_after_rows", 1)
            monkeypatch.setattr(platform.events, "compact_ratio", 0)
        if staged:
            write = platform.events._load  # type: ignore[attr-defined]

            def slow_write(*args: Any) -> None:
                time.sleep(0.05)  # the runtime evaluates the staged slice meanwhile
                write(*args)

            monkeypatch.setattr(platform.events, "_load", slow_write)
            platform.processor.start()
        source = add_source(platform.state, "mixed", "web")
        engine = DuckDBEngine(platform.events)
        assert engine.rollups
        raw = DuckDBEngine(platform.events, rollups=False)
        for text in RULES:
            service.apply_segment(platform.state, engine, None, parse_documents(text, "segment")[0], T0)
        n = 0
        for batch in batches:
            send(platform, source.write_key, [_message(item, n + i) for i, item in enumerate(batch)])
            n += len(batch)
            assert platform.processor.drain()
            vocab = service.vocabulary(platform.state)
            for name, definition in vocab.segments.items():
                full = service.compute_members(platform.state, engine, definition, T0, vocab=vocab)
                assert set(service.member_ids(platform.state, name)) == full, name
                # the daily tables, kept by the loads (merges included), answer as the events alone do
                assert full == service.compute_members(platform.state, raw, definition, T0, vocab=vocab), name
    finally:
        platform.close()


class RecordingEngine(DuckDBEngine):
    """The DuckDB engine, keeping the SQL it ran."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sql: list[str] = []

    def rows(self, compiled: Any) -> list[tuple[Any, ...]]:
        self.sql.append(compiled.sql)
        return super().rows(compiled)


def test_only_incremental_queries_read_the_touched_profiles_events(sqlite_platform: Platform) -> None:
    """Full (and timed) evaluation reads the daily tables; incremental evaluation reads the touched profiles' events
    once (subset) and the same members come out either way."""
    platform = sqlite_platform
    pos = add_source(platform.state, "pos", "store")
    send(platform, pos.write_key, [
        {"type": "identify", "userId": "ann", "messageId": "i1", "traits": {"country": "PL"},
         "timestamp": (T0 - timedelta(days=200)).isoformat()},
        order("ann", T0 - timedelta(days=150), "o1"),
        order("ann", T0 - timedelta(days=90), "o2"),
        order("bob", T0 - timedelta(days=90), "o3"),
    ])  # fmt: skip
    assert platform.processor.drain()
    engine = RecordingEngine(platform.events)
    service.apply_segment(platform.state, engine, None, parse_documents(LAPSED, "segment")[0], T0)
    engine.sql.clear()
    service.evaluate_all(platform.state, engine, None, T0)
    assert any("event_days" in sql for sql in engine.sql)
    assert not any("touched_events" in sql for sql in engine.sql)
    ann = profiles.resolve(platform.state, platform.rules, "user_id:ann")
    bob = profiles.resolve(platform.state, platform.rules, "user_id:bob")
    assert service.member_ids(platform.state, "lapsed-store-buyers") == [ann]
    engine.sql.clear()
    service.evaluate_all(platform.state, engine, None, T0, [ann or "", bob or "", "gone"])
    assert any("touched_events" in sql for sql in engine.sql)
    assert not any("event_days" in sql for sql in engine.sql)
    assert service.member_ids(platform.state, "lapsed-store-buyers") == [ann]
    members = service.compute_members(platform.state, engine, service.get_segment(platform.state,
                                      "lapsed-store-buyers"), T0, [ann or "", bob or ""])  # fmt: skip
    assert members == {ann}
