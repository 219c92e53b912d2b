"""Broadcasts: one template to an audience now, at a time, or at a local time of day; rate limit; holdout; A/B."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from accord.identity import queries as identity_queries
from accord.messaging import tables as t
from accord.messaging.policy import MARKETING, PolicyConfig, local_zone
from accord.messaging.recipients import Recipient
from accord.messaging.service import Messaging, MessagingError, SendRequest, promotion_from
from accord.profiles.service import InvalidIdentifier, parse_identifier
from accord.storage import new_id, utcnow

if TYPE_CHECKING:
    from accord.messaging.parallel import ParallelPlanner

CHUNK = 1000


def resolve_audience(messaging: Messaging, audience: Mapping[str, Any]) -> list[str]:
    """Profile ids of {"segment": name} (through the wired resolver), {"profile_ids": [...]} or
    {"identifiers": ["email:...", ...]} (unknown identifiers are skipped)."""
    if "segment" in audience:
        if messaging.audience is None:
            raise MessagingError("segments are not available in this installation", "segments_unavailable")
        try:
            return list(dict.fromkeys(messaging.audience(str(audience["segment"]))))
        except KeyError as exc:
            raise MessagingError(f"no segment named {audience['segment']!r}", "unknown_segment", 404) from exc
    if "profile_ids" in audience:
        return list(dict.fromkeys(str(p) for p in audience["profile_ids"]))
    if "identifiers" in audience:
        out: list[str] = []
        for text in audience["identifiers"]:
            try:
                key = parse_identifier(str(text), messaging.consents.rules)
            except InvalidIdentifier as exc:
                raise MessagingError(str(exc), "invalid_identifier") from exc
            pid = identity_queries.profile_for_identifier(messaging.engine, key)
            current = identity_queries.current_profile(messaging.engine, pid) if pid else None
            if current:
                out.append(current)
        return list(dict.fromkeys(out))
    raise MessagingError("audience must name a segment, profile_ids or identifiers", "invalid_audience")


def variant_for(broadcast_id: str, profile_id: str, variants: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    total = sum(float(v.get("weight", 1)) for v in variants)
    digest = hashlib.sha256(f"ab:{broadcast_id}:{profile_id}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64 * total
    for v in variants:
        point -= float(v.get("weight", 1))
        if point < 0:
            return v
    return variants[-1]


@dataclass(frozen=True)
class _Schedule:
    """Each recipient's due time: START, or the next LOCAL_TIME of day in their zone, spread by RATE per second.
    A plain object rather than a closure, so that requests can travel to planning worker processes."""

    policy: PolicyConfig
    start: datetime
    local_time: time | None
    rate: float | None
    offset: int

    def __call__(self, recipient: Recipient, index: int) -> datetime:
        due = self.start
        if self.local_time is not None:
            zone = local_zone(recipient.traits, self.policy)
            local = self.start.astimezone(zone)
            candidate = local.replace(hour=self.local_time.hour, minute=self.local_time.minute, second=0, microsecond=0)
            if candidate < local:
                candidate += timedelta(days=1)
            due = candidate.astimezone(self.start.tzinfo)
        if self.rate:
            due += timedelta(seconds=(self.offset + index) / self.rate)
        return due


def create_broadcast(
    messaging: Messaging,
    name: str,
    template: str,
    audience: Mapping[str, Any],
    channels: Sequence[str] | None = None,
    purpose: str | None = None,
    at: datetime | None = None,
    local_time: str | None = None,
    holdout_percent: float = 0.0,
    variants: Sequence[Mapping[str, Any]] | None = None,
    rate_per_second: float | None = None,
    tags: Sequence[str] = (),
    broadcast_id: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    planner: ParallelPlanner | None = None,
    promotes: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Plan a broadcast: a decision (and an outbox row when it is to be sent) for every audience member.
    Planning runs in chunks, each in one transaction; running it again with the same BROADCAST_ID resumes it
    without duplicating anyone (idempotency key per broadcast and profile). With PLANNER, chunks are decided,
    rendered and written by its worker processes while this one loads the next recipients. PROMOTES
    ({"skus", "categories", "within"}) declares the promoted items for this broadcast, instead of its templates'
    own declarations: people who bought one within the window are suppressed (`already_purchased`)."""
    if not 0 <= holdout_percent < 100:
        raise MessagingError("holdout must be between 0 and 100 percent", "invalid_holdout")
    if rate_per_second is not None and rate_per_second <= 0:
        raise MessagingError("rate must be positive", "invalid_rate")
    try:
        wall = time.fromisoformat(local_time) if local_time else None
    except ValueError as exc:
        raise MessagingError(f"local time must be HH:MM, got {local_time!r}", "invalid_local_time") from exc
    if at is not None and at.tzinfo is None:
        raise MessagingError("the send time needs a time zone (e.g. 2026-05-01T09:00:00+02:00)", "invalid_time")
    promotion = promotion_from(promotes)
    arms = list(variants or [{"name": "A", "template": template, "weight": 1}])
    for arm in arms:
        messaging.template(str(arm.get("template", template)))  # unknown templates fail before anything is planned
    profile_ids = resolve_audience(messaging, audience)
    bid = broadcast_id or new_id()
    spec = {
        "audience": dict(audience),
        "channels": list(channels) if channels else None,
        "purpose": purpose,
        "at": at.isoformat() if at else None,
        "local_time": local_time,
        "holdout_percent": holdout_percent,
        "variants": arms,
        "rate_per_second": rate_per_second,
        "tags": list(tags),
        "promotes": promotion.to_dict() if promotion else None,
        "audience_size": len(profile_ids),
    }
    b = t.broadcasts
    with messaging.engine.begin() as conn:
        if conn.execute(sa.select(b.c.id).where(b.c.id == bid)).first() is None:
            conn.execute(
                b.insert().values(
                    id=bid,
                    name=name,
                    template=template,
                    spec=json.dumps(spec),
                    status="planning",
                    counts="{}",
                    created_at=utcnow(),
                )
            )
    start = at or utcnow()
    totals: dict[str, int] = defaultdict(int)
    pending: list[Future[dict[str, int]]] = []
    for offset in range(0, len(profile_ids), CHUNK):
        chunk = profile_ids[offset : offset + CHUNK]
        recipients = messaging.loader(chunk)
        by_arm: dict[str, list[tuple[Recipient, str]]] = defaultdict(list)
        arm_of = {str(a.get("name", "A")): a for a in arms}
        for pid in chunk:
            recipient = recipients.get(pid)
            if recipient is None:
                totals["unknown_profile"] += 1
                continue
            arm = variant_for(bid, recipient.profile_id, arms) if len(arms) > 1 else arms[0]
            by_arm[str(arm.get("name", "A"))].append((recipient, f"b:{bid}:{recipient.profile_id}"))
        with messaging.engine.begin() as conn:
            for arm_name, batch in by_arm.items():
                request = SendRequest(
                    template=str(arm_of[arm_name].get("template", template)),
                    channels=list(channels) if channels else None,
                    purpose=purpose,
                    kind=MARKETING,
                    tags=list(tags),
                    due_at=start,
                    broadcast_id=bid,
                    variant=arm_name if len(arms) > 1 else None,
                    holdout_percent=holdout_percent,
                    due_for=_Schedule(messaging.policy, start, wall, rate_per_second, offset),
                    promotes=promotion,
                )
                if planner is not None:
                    pending.append(planner.submit(batch, request))
                    continue
                for status, n in messaging.plan_in(conn, batch, request).items():
                    totals[status] += n
        while planner is not None and len(pending) > 2 * planner.workers:  # keep the workers busy, memory bounded
            for status, n in pending.pop(0).result().items():
                totals[status] += n
        if progress:
            progress(min(offset + CHUNK, len(profile_ids)), len(profile_ids))
    for future in pending:
        for status, n in future.result().items():
            totals[status] += n
    with messaging.engine.begin() as conn:
        conn.execute(b.update().where(b.c.id == bid).values(status="planned", counts=json.dumps(totals)))
    return {"id": bid, "name": name, "audience": len(profile_ids), "planned": dict(totals)}


def broadcast_report(messaging: Messaging, broadcast_id: str) -> dict[str, Any]:
    """Deliveries of a broadcast by variant and status, with delivered cost: the A/B and holdout results."""
    b, d = t.broadcasts, t.deliveries
    with messaging.engine.connect() as conn:
        row = conn.execute(sa.select(b).where(b.c.id == broadcast_id)).first()
        if row is None:
            raise MessagingError(f"no broadcast {broadcast_id}", "unknown_broadcast", 404)
        rows = conn.execute(
            sa.select(
                d.c.variant,
                d.c.status,
                sa.func.count(),
                sa.func.sum(d.c.cost_minor),
                sa.func.count(d.c.opened_at),
                sa.func.count(d.c.clicked_at),
            )
            .where(d.c.broadcast_id == broadcast_id)
            .group_by(d.c.variant, d.c.status)
        ).all()
        currency = conn.execute(
            sa.select(d.c.currency).where(d.c.broadcast_id == broadcast_id, d.c.currency.is_not(None)).limit(1)
        ).scalar()
    variants: dict[str, dict[str, Any]] = {}
    for variant, status, n, cost, opened, clicked in rows:
        v = variants.setdefault(variant or "A", {"by_status": {}, "cost_minor": 0, "opened": 0, "clicked": 0})
        v["by_status"][status] = int(n)
        v["cost_minor"] += int(cost or 0)
        v["opened"] += int(opened)
        v["clicked"] += int(clicked)
    return {
        "id": row.id,
        "name": row.name,
        "template": row.template,
        "status": row.status,
        "spec": json.loads(row.spec),
        "planned": json.loads(row.counts),
        "variants": variants,
        "currency": currency,
    }


def list_broadcasts(messaging: Messaging, limit: int = 100) -> list[dict[str, Any]]:
    """The newest broadcasts: id, name, template, status, audience spec and planned counts."""
    b = t.broadcasts
    with messaging.engine.connect() as conn:
        rows = conn.execute(sa.select(b).order_by(b.c.created_at.desc(), b.c.id.desc()).limit(limit)).all()
    return [
        {
            "id": r.id,
            "name": r.name,
            "template": r.template,
            "status": r.status,
            "spec": json.loads(r.spec),
            "planned": json.loads(r.counts),
            "created_at": r.created_at,
        }
        for r in rows
    ]


def _send_time(row: Any) -> datetime:
    at = json.loads(row.spec).get("at")
    return datetime.fromisoformat(at) if at else row.created_at


def broadcast_groups(engine: sa.Engine, name_or_id: str) -> dict[str, Any]:
    """Who was in which group of a broadcast (its id, or the newest broadcast of that name): "holdout" (held out by
    the broadcast's holdout or the global control group), and every other audience member by A/B variant
    ("broadcast" without variants) whatever the policy then decided — the intention-to-treat groups to measure
    lift on. With the send time and the channels its messages went out on."""
    b, d = t.broadcasts, t.deliveries
    with engine.connect() as conn:
        row = conn.execute(sa.select(b).where(b.c.id == name_or_id)).first()
        if row is None:
            row = conn.execute(
                sa.select(b).where(b.c.name == name_or_id).order_by(b.c.created_at.desc(), b.c.id.desc()).limit(1)
            ).first()
        if row is None:
            raise MessagingError(f"no broadcast named {name_or_id!r}", "unknown_broadcast", 404)
        members = conn.execute(
            sa.select(d.c.profile_id, d.c.status, d.c.variant, d.c.channel, d.c.reason).where(
                d.c.broadcast_id == row.id
            )
        ).all()
    groups: dict[str, list[str]] = defaultdict(list)
    channels: dict[str, int] = defaultdict(int)
    reasons: dict[str, int] = defaultdict(int)
    for profile_id, status, variant, channel, reason in members:
        if status == "held_out":
            groups["holdout"].append(profile_id)
            reasons[reason] += 1
        else:
            groups[variant or "broadcast"].append(profile_id)
            if channel:
                channels[channel] += 1
    return {
        "id": row.id,
        "name": row.name,
        "sent_at": _send_time(row).isoformat(),
        "channels": dict(channels),
        "holdout_reasons": dict(reasons),
        "groups": dict(groups),
    }


def holdout_broadcasts(engine: sa.Engine, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """broadcast_groups of every broadcast sent in [START, END) that held someone out."""
    b, d = t.broadcasts, t.deliveries
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(b)
            .where(sa.exists().where(d.c.broadcast_id == b.c.id, d.c.status == "held_out"))
            .order_by(b.c.created_at)
        ).all()
    return [broadcast_groups(engine, row.id) for row in rows if start <= _send_time(row) < end]


def record_past_broadcast(
    engine: sa.Engine,
    name: str,
    channel: str,
    sent_at: datetime,
    sent: Sequence[str],
    held_out: Sequence[str],
    source: str = "import",
) -> dict[str, Any]:
    """Record a broadcast that another tool already sent (campaign history): SENT got the message on CHANNEL at
    SENT_AT, HELD_OUT were its randomised holdout. Nothing is queued; the groups are what broadcast_groups and the
    lift analyses read. Recording the same NAME and SENT_AT again changes nothing."""
    if sent_at.tzinfo is None:
        raise MessagingError("the send time needs a time zone", "invalid_time")
    b, d = t.broadcasts, t.deliveries
    key = f"{source}:{name}:{sent_at.isoformat()}"
    bid = hashlib.sha256(key.encode()).hexdigest()[:26]
    with engine.begin() as conn:
        if conn.execute(sa.select(b.c.id).where(b.c.id == bid)).first() is not None:
            return {"id": bid, "name": name, "recorded": False}
        total = len(sent) + len(held_out)
        spec = {
            "audience": {"imported": source},
            "channels": [channel],
            "at": sent_at.isoformat(),
            "holdout_percent": round(100.0 * len(held_out) / total, 3) if total else 0.0,
            "audience_size": total,
            "imported": True,
        }
        held = list(dict.fromkeys(held_out))
        sent_only = [pid for pid in dict.fromkeys(sent) if pid not in set(held)]
        counts = {"sent": len(sent_only), "held_out": len(held)}
        conn.execute(
            b.insert().values(
                id=bid, name=name, template=name, spec=json.dumps(spec), status="imported", counts=json.dumps(counts),
                created_at=sent_at,
            )
        )  # fmt: skip
        now = utcnow()
        rows = [
            {
                "id": new_id(),
                "idempotency_key": f"b:{bid}:{pid}",
                "profile_id": pid,
                "broadcast_id": bid,
                "template": name,
                "purpose": "promotions",
                "kind": MARKETING,
                "tags": "[]",
                "channel": channel if status == "sent" else None,
                "status": status,
                "reason": f"imported from {source}" if status == "sent" else f"imported holdout ({source})",
                "due_at": sent_at,
                "created_at": now,
                "sent_at": sent_at if status == "sent" else None,
            }
            for status, members in (("sent", sent_only), ("held_out", held))
            for pid in members
        ]
        for offset in range(0, len(rows), CHUNK):
            conn.execute(d.insert(), rows[offset : offset + CHUNK])
    return {"id": bid, "name": name, "recorded": True, **counts}
