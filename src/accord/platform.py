"""The composition root: opens the stores and wires the domain services for the faces (API, CLI)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property, partial
from typing import Any

import sqlalchemy as sa

from accord.collect.emit import emit
from accord.collect.intake import Intake
from accord.collect.journal import Journal
from accord.collect.processor import Processor
from accord.collect.segment import SourceInfo
from accord.collect.sources import source_by_key
from accord.config import Settings
from accord.consent.service import Consents
from accord.identity import queries as identity_queries
from accord.identity.graph import IdentityGraph
from accord.identity.rules import IdentityRules
from accord.journeys import service as journeys_service
from accord.journeys.engine import Engine as JourneyEngine
from accord.journeys.engine import Sender as JourneySender
from accord.journeys.engine import SendRequest as JourneySendRequest
from accord.journeys.feed import address_of, event_reader, traits_lookup
from accord.journeys.runner import Runner as JourneyRunner
from accord.loyalty.orders import OrderPoints
from accord.loyalty.service import LoyaltyService
from accord.messaging.policy import MARKETING, TRANSACTIONAL
from accord.messaging.purchases import PurchaseLedger
from accord.messaging.service import Messaging, MessagingError
from accord.messaging.service import SendRequest as MessageRequest
from accord.offers.service import OfferService
from accord.segments import service as segments_service
from accord.segments.engines import DuckDBEngine
from accord.segments.runtime import SegmentRuntime
from accord.storage import create_state_engine, migrate
from accord.storage.events import EventStore, open_event_store
from accord.storage.group_commit import GroupCommitter


@dataclass
class Platform:
    """Open stores and services of one Accord process."""

    settings: Settings
    state: sa.Engine
    events: EventStore
    rules: IdentityRules
    journal: Journal
    graph: IdentityGraph
    processor: Processor
    segments: SegmentRuntime
    journeys: JourneyEngine
    journey_runner: JourneyRunner
    committer: GroupCommitter
    offers: OfferService
    loyalty: LoyaltyService
    purchases: PurchaseLedger | None = None  # messaging's record of who bought what (kept by a listener)
    _sources: dict[str, SourceInfo] = field(default_factory=dict)

    def lookup_source(self, write_key: str) -> SourceInfo | None:
        """Source of a write key, cached (write keys do not change)."""
        cached = self._sources.get(write_key)
        if cached is None:
            source = source_by_key(self.state, write_key)
            if source is None:
                return None  # unknown keys are not cached: the source may be created a moment later
            if len(self._sources) > 10_000:
                self._sources.clear()
            cached = self._sources[write_key] = SourceInfo(source.id, source.channel)
        return cached

    def record_rejects(self, intake: Intake, channel: str) -> None:
        """Keep the rejected messages of a request, so that nothing is dropped silently."""
        self.journal.record_rejects([(intake.source.id, channel, r.code, r.reason, r.payload) for r in intake.rejects])

    def stats(self) -> dict[str, Any]:
        """Counts of events, profiles and rejected messages, and the processing lag."""
        journal_seq, _change_seq = self.events.cursors()
        return {
            "events": self.events.count_events(),
            "events_by_channel": self.events.event_counts_by_channel(),
            "profiles": identity_queries.count_profiles(self.state),
            "accepted_messages": self.journal.count_messages(),
            "rejected_messages": self.journal.count_rejects(),
            "processing_lag": max(self.journal.last_seq() - journal_seq, 0),
            # a failed slice, or a staged slice the event store's writer keeps retrying
            "processor_error": self.processor.last_error or self.events.write_error,
        }

    @cached_property
    def consents(self) -> Consents:
        """The consent service (links signed with ACCORD_SECRET_KEY or ACCORD_HOME/signing_key)."""
        from accord.messaging.wiring import consents_for

        return consents_for(self.settings, self.state, self.journal, self.rules)

    @cached_property
    def messaging(self) -> Messaging:
        """The messaging service; broadcast audiences by segment come from accord.segments when installed."""
        from accord.messaging.wiring import messaging_for

        return messaging_for(self.settings, self.state, self.journal, self.consents, self.events)

    def wire_listeners(self) -> None:
        """Domains that react to newly loaded events."""
        from accord.messaging.listeners import hold_out_listener

        self.processor.add_listener(hold_out_listener(self.messaging, self.events))

    def close(self) -> None:
        """Stop background work and close the stores."""
        self.journey_runner.stop()
        self.processor.stop()
        self.journal.close()
        self.segments.stop()
        self.committer.stop()
        self.events.close()
        self.state.dispose()


def _emit_staged(journal: Journal, conn: sa.Connection, items: list[tuple[str, dict[str, Any]]]) -> None:
    """Emit the events a group of domain writes staged: one journal entry per internal source and group."""
    by_source: dict[str, list[dict[str, Any]]] = {}
    for source, message in items:
        by_source.setdefault(source, []).append(message)
    for source, messages in by_source.items():
        emit(conn, journal, source, "other", messages)


def open_platform(settings: Settings, read_only_events: bool = False) -> Platform:
    """Open (and migrate) the state store, open the event store, wire the services."""
    settings.home.mkdir(parents=True, exist_ok=True)
    state = create_state_engine(settings.state_url)
    migrate(state)
    if read_only_events and settings.events_url.startswith("duckdb:///") and not settings.events_path.exists():
        read_only_events = False  # nothing stored yet: create the empty store rather than fail
    events = open_event_store(settings.events_url, read_only=read_only_events)
    rules = IdentityRules.from_settings(
        settings.identity_priority, settings.identity_limits, settings.blocked_values, settings.default_region
    )
    journal = Journal(state)
    graph = IdentityGraph(state, rules)
    processor = Processor(journal, graph, events)
    segments = SegmentRuntime(
        state, DuckDBEngine(events), journal, graph.changes_since, lambda pid: identity_queries.merges_of(state, pid)
    )
    # staged: membership follows a slice as soon as it is resolved, without waiting for its write (and before
    # journeys, which see membership as of the same events)
    processor.add_listener(segments.on_events, staged=segments.engine.subset)
    committer = GroupCommitter(state, partial(_emit_staged, journal))  # one commit for many redemptions/burns
    offers = OfferService(state, journal, committer)
    loyalty = LoyaltyService(state, journal, committer)
    processor.add_listener(OrderPoints(loyalty, events))
    purchases = PurchaseLedger(state, events, graph.changes_since)  # before journeys: they see the same slice
    processor.add_listener(purchases)
    journeys = _journeys(state, events, journal, processor, read_only_events)
    platform = Platform(
        settings,
        state,
        events,
        rules,
        journal,
        graph,
        processor,
        segments=segments,
        journeys=journeys,
        journey_runner=JourneyRunner(journeys),
        committer=committer,
        offers=offers,
        loyalty=loyalty,
        purchases=purchases,
    )
    platform.wire_listeners()
    journeys.sender = _journey_sender(platform)
    changes = _segment_changes(state)  # segment entries/exits also come from timed and API evaluations
    platform.journey_runner.polls.append(lambda: journeys_service.feed_segments(journeys, changes))
    return platform


def _journeys(
    state: sa.Engine, events: EventStore, journal: Journal, processor: Processor, read_only: bool
) -> JourneyEngine:
    """The journey engine, fed by every loaded slice of events; its profile updates go onto the timeline."""

    def emit_updates(conn: sa.Connection, updates: Sequence[dict[str, Any]]) -> None:
        messages = []
        for update in updates:
            address = address_of(state, update["profile_id"])
            if address is not None:
                messages.append({"type": "identify", **address, "traits": update["traits"]})
        emit(conn, journal, "accord-journeys", "other", messages)

    engine = JourneyEngine(state, emitter=emit_updates, traits=traits_lookup(events))
    if not read_only:
        journeys_service.init_cursor(state, events.cursors()[0])
    reader = event_reader(events)

    segment_changes = _segment_changes(state)

    def feed(_after: int, upto: int) -> None:
        journeys_service.feed_segments(engine, segment_changes)  # membership as of these events first
        journeys_service.feed_events(engine, reader, upto)

    processor.add_listener(feed)
    return engine


def _segment_changes(state: sa.Engine) -> Callable[[int, int], list[Any]]:
    """Segments' membership change feed, as journeys read it."""

    def read(after: int, limit: int) -> list[Any]:
        return list(segments_service.membership_changes_since(state, after, limit))

    return read


def _journey_sender(platform: Platform) -> JourneySender:
    """Journeys send through messaging: policy, rendering and the outbox row in the journey batch's transaction."""

    def send(conn: sa.Connection, request: JourneySendRequest) -> str:
        messaging = platform.messaging
        recipient = messaging.loader([request.profile_id]).get(request.profile_id)
        if recipient is None:
            return "not sent: profile unknown to messaging"
        chosen = [c for c in request.channels if c != "best"]
        message = MessageRequest(
            request.template,
            chosen or None,  # [best]: messaging's channel priority and fallback
            None,
            TRANSACTIONAL if request.purpose == "transactional" else MARKETING,
            tags=[f"journey:{request.journey}"],
            extra={"journey": request.journey, "step": request.step_id, **request.properties},
        )
        conn.exec_driver_sql("SAVEPOINT journey_send")  # a refused message must not undo the rest of the batch
        try:
            counts = messaging.plan_in(conn, [(recipient, request.idempotency_key)], message)
        except MessagingError as exc:
            conn.exec_driver_sql("ROLLBACK TO SAVEPOINT journey_send")
            return f"not sent: {exc}"
        conn.exec_driver_sql("RELEASE SAVEPOINT journey_send")
        return ", ".join(f"{status}" for status, n in sorted(counts.items()) if n) or "no decision"

    return send
