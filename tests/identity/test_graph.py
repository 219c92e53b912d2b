"""The identity graph: merges, conflicts, limits, regrouping, unmerge, and order independence."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.pool import StaticPool

from accord.identity import queries
from accord.identity import tables as t
from accord.identity.graph import IdentityGraph, Touch
from accord.identity.rules import IdentityRules
from accord.storage import create_state_engine, metadata, migrate

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def memory_graph(rules: IdentityRules | None = None) -> IdentityGraph:
    engine = sa.create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
    metadata.create_all(engine)
    return IdentityGraph(engine, rules or IdentityRules())


def touch(minute: int, *keys: str, msg: str | None = None, previous: str | None = None) -> Touch:
    return Touch(list(keys), T0 + timedelta(minutes=minute), msg or f"m{minute}-{'-'.join(keys)}", "src", previous)


def partition(graph: IdentityGraph) -> frozenset[frozenset[str]]:
    groups: dict[str, set[str]] = {}
    for key, pid in queries.grouping(graph.engine).items():
        groups.setdefault(pid, set()).add(key)
    return frozenset(frozenset(g) for g in groups.values())


def test_identifiers_seen_together_merge_profiles_on_both_engines(state_url: str) -> None:
    engine = create_state_engine(state_url)
    migrate(engine)
    graph = IdentityGraph(engine, IdentityRules())
    r1 = graph.resolve([touch(0, "anonymous_id:a1")])[0]
    r2 = graph.resolve([touch(1, "email:ann@x.com")])[0]
    assert r1.profile_id != r2.profile_id
    r3 = graph.resolve([touch(2, "user_id:u1", "email:ann@x.com", "anonymous_id:a1")])[0]
    assert r3.anchor == "user_id:u1"
    assert partition(graph) == {frozenset({"anonymous_id:a1", "email:ann@x.com", "user_id:u1"})}
    survivor = queries.current_profile(engine, r1.profile_id)  # type: ignore[arg-type]
    assert survivor == queries.current_profile(engine, r2.profile_id) == r3.profile_id  # type: ignore[arg-type]
    merges = queries.merges_of(engine, r3.profile_id)  # type: ignore[arg-type]
    assert merges and merges[0]["kind"] == "merge" and merges[0]["message_id"]
    # the event store is told which identifiers moved
    moved = {key for _seq, key, _pid in graph.changes_since(0)}
    assert moved == {"email:ann@x.com"}  # the oldest profile survives; the new user id went straight to it
    engine.dispose()


def test_two_user_ids_never_merge_and_the_conflict_is_recorded() -> None:
    graph = memory_graph()
    graph.resolve([touch(0, "user_id:mum", "anonymous_id:family-pc")])
    graph.resolve([touch(5, "user_id:son", "anonymous_id:family-pc")])
    assert partition(graph) == {
        frozenset({"user_id:mum", "anonymous_id:family-pc"}),
        frozenset({"user_id:son"}),
    }
    conflicts = queries.conflicts(graph.engine)
    assert len(conflicts) == 1
    assert conflicts[0]["kind"] == "user_id_conflict"
    assert "family-pc" in conflicts[0]["detail"]


def test_shared_device_goes_to_whoever_used_it_first_even_when_events_arrive_late() -> None:
    graph = memory_graph()
    graph.resolve([touch(5, "user_id:son", "anonymous_id:family-pc")])  # arrives first, happened later
    graph.resolve([touch(0, "user_id:mum", "anonymous_id:family-pc")])
    assert partition(graph) == {
        frozenset({"user_id:mum", "anonymous_id:family-pc"}),
        frozenset({"user_id:son"}),
    }


def test_limits_keep_an_extra_email_apart() -> None:
    graph = memory_graph(IdentityRules(limits={"user_id": 1, "email": 2, "anonymous_id": 100}))
    graph.resolve([touch(0, "user_id:u", "email:a@x.com"), touch(1, "user_id:u", "email:b@x.com")])
    graph.resolve([touch(2, "user_id:u", "email:c@x.com")])
    assert frozenset({"email:c@x.com"}) in partition(graph)
    assert queries.conflicts(graph.engine)[0]["kind"] == "user_id_conflict"


def test_alias_links_previous_anonymous_id_and_refuses_to_merge_two_user_ids() -> None:
    graph = memory_graph()
    graph.resolve([touch(0, "anonymous_id:anon-1")])
    graph.resolve([touch(1, "user_id:new", previous="anon-1")])
    assert frozenset({"user_id:new", "anonymous_id:anon-1"}) in partition(graph)
    graph.resolve([touch(2, "user_id:old")])
    graph.resolve([touch(3, "user_id:new", previous="old")])
    assert frozenset({"user_id:old"}) in partition(graph)
    assert any(c["kind"] == "user_id_conflict" for c in queries.conflicts(graph.engine))


def test_unmerge_detaches_identifier_and_is_not_undone_by_the_same_evidence(state_url: str) -> None:
    engine = create_state_engine(state_url)
    migrate(engine)
    graph = IdentityGraph(engine, IdentityRules())
    pid = graph.resolve([touch(0, "user_id:u1", "email:shared@x.com")])[0].profile_id
    assert pid
    new_pid = graph.unmerge(pid, "email:shared@x.com", "shared mailbox")
    assert queries.profile_for_identifier(engine, "email:shared@x.com") == new_pid
    assert queries.profile_for_identifier(engine, "user_id:u1") == pid
    graph.resolve([touch(1, "user_id:u1", "email:shared@x.com")])  # the same link again
    assert queries.profile_for_identifier(engine, "email:shared@x.com") == new_pid
    kinds = [m["kind"] for m in queries.merges_of(engine, pid)]
    assert "unmerge" in kinds
    with engine.connect() as conn:
        severed = conn.execute(sa.select(t.identity_links.c.identifiers).where(t.identity_links.c.severed)).all()
    assert [json.loads(s[0]) for s in severed] == [["user_id:u1", "email:shared@x.com"]]
    engine.dispose()


IDS = (
    [f"user_id:u{i}" for i in range(3)]
    + [f"email:e{i}@x.com" for i in range(3)]
    + [f"anonymous_id:a{i}" for i in range(4)]
    + ["phone:+48601234567"]
)

events_strategy = st.lists(
    st.tuples(st.integers(0, 50), st.lists(st.sampled_from(IDS), min_size=1, max_size=3, unique=True)),
    min_size=1,
    max_size=14,
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=events_strategy, data=st.data())
def test_grouping_does_not_depend_on_arrival_order(events: list[tuple[int, list[str]]], data: st.DataObject) -> None:
    rules = IdentityRules(limits={"user_id": 1, "email": 2, "phone": 1, "anonymous_id": 3})
    touches = [touch(minute, *keys, msg=f"m{i}") for i, (minute, keys) in enumerate(events)]
    shuffled = data.draw(st.permutations(touches))
    split = data.draw(st.integers(1, max(1, len(touches))))
    first, second = memory_graph(rules), memory_graph(rules)
    first.resolve(touches)
    for i in range(0, len(shuffled), split):
        second.resolve(shuffled[i : i + split])
    assert partition(first) == partition(second)
    # and the rules hold in the result
    for group in partition(second):
        users = [k for k in group if k.startswith("user_id:")]
        assert len(users) <= 1


def merged_into(graph: IdentityGraph) -> dict[str, str | None]:
    with graph.engine.connect() as conn:
        return dict(conn.execute(sa.select(t.profiles.c.id, t.profiles.c.merged_into)).all())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=events_strategy, data=st.data())
def test_a_retired_profile_points_to_where_its_identifiers_went(
    events: list[tuple[int, list[str]]], data: st.DataObject
) -> None:
    """Looking a customer up by an old profile id must land on a profile that took some of its identifiers."""
    rules = IdentityRules(limits={"user_id": 1, "email": 2, "phone": 1, "anonymous_id": 3})
    touches = data.draw(st.permutations([touch(m, *keys, msg=f"m{i}") for i, (m, keys) in enumerate(events)]))
    graph = memory_graph(rules)
    for one in touches:
        before = queries.grouping(graph.engine)
        redirects_before = merged_into(graph)
        graph.resolve([one])
        after = queries.grouping(graph.engine)
        for pid, target in merged_into(graph).items():
            if target is None or redirects_before.get(pid) == target:
                continue
            held = {k for k, p in before.items() if p == pid}
            if not held:
                continue  # created and retired within this one call
            assert held & {k for k, p in after.items() if p == target}, (pid, target, held)
