"""The resolver never resolves with a stale view of the identity graph: merges within a slice and across slices,
an unmerge, a match merge or an erasure done by another process (another engine and graph, as the server does while
the resolver runs in its worker) between slices, on SQLite and PostgreSQL, in whole-slice and short transactions."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from accord.collect.intake import parse_request
from accord.collect.journal import Journal
from accord.collect.resolver import Resolver
from accord.collect.segment import SourceInfo
from accord.collect.sources import add_source
from accord.identity import queries
from accord.identity import tables as t
from accord.identity.erasure import erase_profile_in
from accord.identity.graph import IdentityGraph, ProfileMerge
from accord.identity.rules import IdentityRules
from accord.storage import create_state_engine, migrate

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


@dataclass
class Pipe:
    """A resolver (the worker's view) and a second graph on its own engine (the server's view)."""

    resolver: Resolver
    other: IdentityGraph
    source: SourceInfo
    write_key: str
    after: int = 0
    n: int = 0

    def send(self, *messages: dict[str, Any]) -> None:
        batch = []
        for message in messages:
            self.n += 1
            batch.append(
                {"messageId": f"m{self.n}", "timestamp": (T0 + timedelta(minutes=self.n)).isoformat(), **message}
            )
        auth = "Basic " + base64.b64encode(f"{self.write_key}:".encode()).decode()
        intake = parse_request(
            json.dumps({"batch": batch}).encode(), None, auth, "batch", self.lookup, datetime.now(UTC)
        )
        assert not intake.rejects, intake.rejects
        self.resolver.journal.append(intake.journal_batch())

    def lookup(self, key: str) -> SourceInfo | None:
        return self.source if key == self.write_key else None

    def process(self) -> dict[str, str | None]:
        """Resolve everything journalled; message id -> profile id given to the event."""
        out: dict[str, str | None] = {}
        while (result := self.resolver.resolve_after(self.after, 5000, 20_000)) is not None:
            table, self.after = result
            data = table.to_pydict()
            out.update(zip(data["message_id"], data["profile_id"], strict=True))
        return out

    def owner(self, key: str) -> str | None:
        return queries.profile_for_identifier(self.other.engine, key)


@pytest.fixture(params=[None, 1], ids=["whole-slice", "one-message-transactions"])
def pipe(request: pytest.FixtureRequest, state_url: str) -> Iterator[Pipe]:
    worker = create_state_engine(state_url)
    migrate(worker)
    server = create_state_engine(state_url)
    src = add_source(server, "web", "web")
    rules = IdentityRules()
    resolver = Resolver(Journal(worker), IdentityGraph(worker, rules), write_chunk=request.param)
    yield Pipe(resolver, IdentityGraph(server, rules), SourceInfo(src.id, "web"), src.write_key)
    resolver.journal.close()
    worker.dispose()
    server.dispose()


def _dangling(engine: sa.Engine) -> int:
    """Identifiers whose profile does not exist."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count())
                .select_from(t.identifiers.outerjoin(t.profiles, t.profiles.c.id == t.identifiers.c.profile_id))
                .where(t.profiles.c.id.is_(None))
            ).scalar_one()
        )


def test_a_login_within_one_slice_moves_the_later_events_to_the_survivor(pipe: Pipe) -> None:
    pipe.send({"type": "identify", "userId": "u1", "traits": {"email": "ann@x.pl"}})
    pipe.send(
        {"type": "track", "event": "Viewed", "anonymousId": "a1"},
        {"type": "identify", "userId": "u1", "anonymousId": "a1"},  # logs in: a1's profile merges into u1's
        {"type": "track", "event": "Viewed", "anonymousId": "a1"},
        {"type": "track", "event": "Viewed", "anonymousId": "a1", "userId": "u1"},
    )
    profiles = pipe.process()
    user = pipe.owner("user_id:u1")
    assert pipe.owner("anonymous_id:a1") == user
    assert profiles["m4"] == profiles["m5"] == user
    assert profiles["m2"] != user  # resolved before the login: the event store follows the change log
    assert ("anonymous_id:a1", user) in {(k, p) for _s, k, p in pipe.other.changes_since(0)}


def test_a_login_in_one_slice_is_seen_by_the_next(pipe: Pipe) -> None:
    pipe.send({"type": "track", "event": "Viewed", "anonymousId": "a1"})
    pipe.send({"type": "identify", "userId": "u1", "traits": {"email": "ann@x.pl"}})
    first = pipe.process()
    assert first["m1"] != first["m2"]
    pipe.send({"type": "identify", "userId": "u1", "anonymousId": "a1"})
    pipe.process()
    pipe.send(
        {"type": "track", "event": "Viewed", "anonymousId": "a1"}, {"type": "track", "event": "X", "userId": "u1"}
    )
    later = pipe.process()
    assert later["m4"] == later["m5"] == pipe.owner("user_id:u1") == first["m1"]  # the older profile survives


def test_an_unmerge_by_another_process_between_slices(pipe: Pipe) -> None:
    pipe.send(
        {"type": "identify", "userId": "u1", "anonymousId": "a1", "traits": {"email": "ann@x.pl"}},
        {"type": "track", "event": "Viewed", "anonymousId": "a1"},
    )
    first = pipe.process()
    joined = pipe.owner("user_id:u1")
    assert first["m2"] == joined == pipe.owner("anonymous_id:a1")
    detached = pipe.other.unmerge(joined, "anonymous_id:a1")  # type: ignore[arg-type]
    pipe.send(
        {"type": "track", "event": "Viewed", "anonymousId": "a1"},
        {"type": "identify", "userId": "u1", "anonymousId": "a1", "traits": {"email": "ann@x.pl"}},  # the same again
        {"type": "track", "event": "Viewed", "anonymousId": "a1", "context": {"device": {"id": "d1"}}},
    )
    later = pipe.process()
    assert later["m3"] == detached
    assert later["m4"] == joined  # anchored on the user id; the severed link does not merge them again
    assert pipe.owner("anonymous_id:a1") == detached
    assert later["m5"] == pipe.owner("device_id:d1") == detached  # a new identifier joins the detached profile


def test_a_match_merge_by_another_process_between_slices(pipe: Pipe) -> None:
    pipe.send(
        {"type": "identify", "userId": "u1", "traits": {"email": "ann@x.pl"}},
        {"type": "track", "event": "Viewed", "anonymousId": "a9"},
    )
    first = pipe.process()
    assert first["m1"] != first["m2"]
    survivor = pipe.other.merge_profiles([ProfileMerge("user_id:u1", "anonymous_id:a9", "score 0.99", "match-1")])[0]
    assert survivor is not None
    pipe.send(
        {"type": "track", "event": "Viewed", "anonymousId": "a9"},
        {"type": "track", "event": "Viewed", "anonymousId": "a9", "context": {"device": {"id": "d9"}}},
    )
    later = pipe.process()
    assert later["m3"] == later["m4"] == survivor == pipe.owner("device_id:d9") == pipe.owner("user_id:u1")


def test_an_erasure_by_another_process_between_slices(pipe: Pipe) -> None:
    pipe.send(
        {"type": "identify", "userId": "u1", "anonymousId": "a1", "traits": {"email": "ann@x.pl"}},
        {"type": "identify", "userId": "u2", "anonymousId": "a2"},
    )
    first = pipe.process()
    erased = pipe.owner("user_id:u1")
    with pipe.other.engine.begin() as conn:
        erase_profile_in(conn, erased, [], "request-1")  # type: ignore[arg-type]
    pipe.send(
        {"type": "track", "event": "Viewed", "anonymousId": "a1"},  # erased: dropped
        {"type": "track", "event": "Viewed", "anonymousId": "a3", "userId": "u2"},  # someone else: still resolved
        {"type": "track", "event": "Viewed", "anonymousId": "a4"},  # a new visitor: a new profile
    )
    later = pipe.process()
    assert "m3" not in later
    assert later["m4"] == first["m2"] == pipe.owner("anonymous_id:a3")
    assert later["m5"] not in (None, erased, first["m2"])
    assert pipe.owner("user_id:u1") is None and pipe.owner("anonymous_id:a1") is None
    assert _dangling(pipe.other.engine) == 0


def test_a_conflict_then_more_events_of_both_people(pipe: Pipe) -> None:
    """A shared device seen with two user ids: the graph keeps them apart, later events follow the regrouping."""
    pipe.send(
        {"type": "identify", "userId": "mum", "anonymousId": "family-pc"},
        {"type": "identify", "userId": "son", "anonymousId": "family-pc"},
        {"type": "track", "event": "Viewed", "anonymousId": "family-pc"},
        {"type": "track", "event": "Viewed", "userId": "son"},
    )
    profiles = pipe.process()
    mum, son = pipe.owner("user_id:mum"), pipe.owner("user_id:son")
    assert mum != son and pipe.owner("anonymous_id:family-pc") == mum
    assert profiles["m3"] == mum and profiles["m4"] == son
    assert len(queries.conflicts(pipe.other.engine)) == 1
