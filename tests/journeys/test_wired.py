"""Journeys wired to the other domains in one platform: a segment entry starts a journey, whose send step goes
through messaging's policy and outbox in the journey batch's transaction."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from accord.journeys import service as journeys
from accord.messaging import tables as mt
from accord.platform import Platform
from accord.segments import service as segments
from accord.segments.engines import DuckDBEngine
from accord.segments.rules import parse_documents
from tests.messaging.helpers import person

VIP = """
name: vips
rule:
  trait: tier
  eq: gold
"""

WELCOME_VIP = """
name: welcome-vip
trigger: {segment_entered: vips}
exit:
  - segment_exited: vips
steps:
  - id: hello
    send: {template: vip-hello, channels: [email, sms]}
  - id: later
    wait: 2d
  - id: again
    send: {template: vip-hello, channels: [email]}
"""

TEMPLATE = {
    "name": "vip-hello",
    "purpose": "promotions",
    "locales": {"en": {"email": {"subject": "Hello {{ first_name }}", "text": "Welcome to gold"}}},
}


def test_a_segment_entry_starts_a_journey_that_sends_through_messaging(platform: Platform) -> None:
    platform.segments.clock = lambda: datetime.now(UTC)
    platform.messaging.save_template(TEMPLATE)
    segments.apply_segment(
        platform.state, DuckDBEngine(platform.events), platform.journal, parse_documents(VIP, "segment")[0], None
    )
    journeys.apply(platform.state, WELCOME_VIP, activate=True)
    ann = person(platform, "ann", first_name="Ann", email="ann@example.com", tier="gold")
    bob = person(platform, "bob", first_name="Bob", email="bob@example.com", tier="gold")  # no consent
    platform.consents.set("email:ann@example.com", "promotions", "email", "opted_in", "test")
    assert sorted(segments.member_ids(platform.state, "vips")) == sorted([ann, bob])
    platform.journeys.run_until_idle()

    with platform.state.connect() as conn:
        deliveries = {
            row.profile_id: row
            for row in conn.execute(sa.select(mt.deliveries).where(mt.deliveries.c.template == "vip-hello"))
        }
    assert deliveries[ann].status == "queued" and deliveries[ann].channel == "email"
    assert deliveries[bob].status != "queued"  # no consent: recorded, not sent
    assert deliveries[ann].idempotency_key.endswith(":hello")
    stats = journeys.stats(platform.state, "welcome-vip")
    assert stats["entered"] == 2 and stats["active"] == 2

    # bob leaves the segment: his instance exits before the second message
    person(platform, "bob", tier="silver")
    platform.journeys.run_until_idle()
    assert journeys.stats(platform.state, "welcome-vip")["exited"] == {"left segment vips": 1}
