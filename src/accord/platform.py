"""The composition root: opens the stores and wires the domain services for the faces (API, CLI)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

import sqlalchemy as sa

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
from accord.messaging.service import Messaging
from accord.storage import create_state_engine, migrate
from accord.storage.events import EventStore, open_event_store


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

    def forget_source(self, write_key: str) -> None:
        """Drop a cached lookup (after sources change)."""
        self._sources.pop(write_key, None)

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
            "processor_error": self.processor.last_error,
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

    def last_event_at(self) -> datetime | None:
        """Newest event time."""
        return self.events.last_event_at()

    def close(self) -> None:
        """Stop background work and close the stores."""
        self.processor.stop()
        self.events.close()
        self.state.dispose()


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
    platform = Platform(settings, state, events, rules, journal, graph, processor)
    platform.wire_listeners()
    return platform
