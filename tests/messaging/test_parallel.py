"""Planning a broadcast on worker processes gives the same decisions as planning in one process: every recipient
exactly one row, the same statuses and reasons, caps per person respected, and a rerun resumes without duplicates."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import sqlalchemy as sa

from accord.messaging import tables as t
from accord.messaging.broadcasts import create_broadcast
from accord.messaging.parallel import ParallelPlanner
from accord.messaging.policy import CapRule, PolicyConfig, QuietHours
from accord.messaging.recipients import Recipient, static_loader
from accord.platform import Platform

TEMPLATE = {
    "name": "hello",
    "purpose": "promotions",
    "locales": {
        "en": {"email": {"subject": "Hi {{ first_name }}", "text": "Hello {{ first_name }}, {{ unsubscribe_url }}"}},
        "pl": {"email": {"subject": "Cześć {{ first_name }}", "text": "Witaj {{ first_name }}"}},
    },
}


def people(n: int) -> list[Recipient]:
    return [
        Recipient(
            f"P{i:025d}",
            {"email": [f"p{i}@example.com"], "user_id": [f"p{i}"]},
            {"first_name": f"N{i}", "locale": "pl" if i % 2 else "en", "timezone": "Asia/Shanghai" if i % 3 else "UTC"},
        )
        for i in range(n)
    ]


def deliveries(platform: Platform, broadcast_id: str) -> list[tuple[str, str, str, str | None]]:
    d = t.deliveries
    with platform.state.connect() as conn:
        rows = conn.execute(
            sa.select(d.c.profile_id, d.c.status, d.c.reason, d.c.locale).where(d.c.broadcast_id == broadcast_id)
        )
        return sorted((r.profile_id, r.status, r.reason, r.locale) for r in rows)


def test_worker_processes_plan_exactly_what_one_process_plans(platform: Platform) -> None:
    messaging = platform.messaging
    messaging.policy = PolicyConfig(caps=[CapRule(1, "day")], quiet_hours=QuietHours(), workspace_timezone="UTC")
    messaging.save_template(TEMPLATE)
    audience = people(2500)
    messaging.loader = static_loader(audience)
    for r in audience[: 2500 // 2]:  # half of them opted in; the rest are dropped for want of consent
        platform.consents.set(f"email:{r.first('email')}", "promotions", "email", "opted_in", "test", "consent")
    ids = {"profile_ids": [r.profile_id for r in audience]}
    at = datetime(2031, 5, 6, 20, 30, tzinfo=UTC)  # 04:30 in Shanghai: deferred there, not in UTC

    serial = create_broadcast(messaging, "one", "hello", ids, channels=["email"], at=at, broadcast_id="SERIAL")
    with ParallelPlanner(messaging, workers=2) as planner:
        planner.warm_up(["hello"])
        parallel = create_broadcast(
            messaging, "two", "hello", ids, channels=["email"], at=at, broadcast_id="PARALLEL", planner=planner
        )
        again = create_broadcast(
            messaging, "two", "hello", ids, channels=["email"], at=at, broadcast_id="PARALLEL", planner=planner
        )

    assert serial["planned"] == {"queued": 1250, "dropped": 1250}
    # the second broadcast meets the 1/day cap for everyone the first one queued
    assert parallel["planned"] == {"dropped": 2500}
    assert again["planned"] == parallel["planned"]  # a rerun plans nobody twice (same keys)
    rows = deliveries(platform, "PARALLEL")
    assert len(rows) == 2500 and len({r[0] for r in rows}) == 2500
    reasons = Counter(r[2].split(";")[0] for r in rows)
    assert reasons["frequency cap 1/day reached"] == 1250
    assert all(r[2].startswith("no channel: no_consent") for r in rows if "frequency" not in r[2])

    fresh = people(3000)[2500:]  # new people: the workers plan and render them like one process does
    messaging.loader = static_loader(fresh)
    for r in fresh:
        platform.consents.set(f"email:{r.first('email')}", "promotions", "email", "opted_in", "test", "consent")
    new_ids = {"profile_ids": [r.profile_id for r in fresh]}
    with ParallelPlanner(messaging, workers=2) as planner:
        result = create_broadcast(messaging, "three", "hello", new_ids, channels=["email"], at=at, planner=planner)
    assert result["planned"] == {"queued": 500}
    planned = deliveries(platform, result["id"])
    assert Counter(r[3] for r in planned) == {"pl": 250, "en": 250}
    assert sum("Asia/Shanghai" in r[2] and "2031-05-07 09:00" in r[2] for r in planned) == 334
