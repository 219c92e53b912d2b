"""The outbox sender: claims due deliveries with a lease, sends them through the channel's providers with the
delivery id as idempotency key, retries with backoff, fails over between providers, falls back between channels."""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from accord.messaging import tables as t
from accord.messaging.adapters.base import DELIVERED, HARD_BOUNCE, PERMANENT, SENT, OutMessage, SendResult
from accord.messaging.adapters.http import make_adapter
from accord.messaging.service import Messaging, SendRequest, delivery_event, emit_events
from accord.storage import new_id, utcnow


def fall_back_in(messaging: Messaging, conn: sa.Connection, row: Any, why: str) -> bool:
    """Move a delivery to its next channel (queued now); failed when no channel is left. True if one is left."""
    content = json.loads(row.content or "[]")
    remaining = [c for c in content if c["channel"] != row.channel]
    d = t.deliveries
    if not remaining and row.status == "sent":
        return False  # accepted on the last channel: nothing to fall back to, and it is not a failure
    if not remaining:
        conn.execute(
            d.update()
            .where(d.c.id == row.id)
            .values(status="failed" if row.status != "bounced" else "bounced", error=why, claimed_by=None)
        )
        if row.status != "bounced":
            messaging.record_state_in(conn, row, "failed", {"error": why})
        return False
    conn.execute(
        d.update()
        .where(d.c.id == row.id)
        .values(
            status="queued",
            channel=remaining[0]["channel"],
            content=json.dumps(remaining, ensure_ascii=False),
            provider=None,
            provider_message_id=None,
            attempts=0,
            due_at=utcnow(),
            claimed_by=None,
            claimed_until=None,
            sent_at=None,
            error=why,
            reason=f"{row.reason}; fell back from {row.channel} to {remaining[0]['channel']} ({why})",
        )
    )
    return True


@dataclass
class Sender:
    """Sends what the outbox holds. Safe to run in several processes (claims are leased) and to kill at any point:
    an unfinished claim is taken again when its lease runs out and resent under the same idempotency key."""

    messaging: Messaging
    batch_size: int = 200
    lease: timedelta = timedelta(seconds=60)
    attempts_per_provider: int = 3
    backoff: float = 2.0  # seconds before the first retry; doubles each time
    backoff_cap: float = 600.0
    _adapters: dict[str, Any] = field(default_factory=dict)
    _providers: dict[str, list[Any]] = field(default_factory=dict)
    _loaded_at: float = 0.0

    @property
    def engine(self) -> sa.Engine:
        """The state store."""
        return self.messaging.engine

    def _load_providers(self) -> None:
        if time.monotonic() - self._loaded_at < 5 and self._providers:
            return
        p = t.providers
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(p).where(p.c.enabled.is_(True)).order_by(p.c.priority, p.c.name)).all()
        providers: dict[str, list[Any]] = defaultdict(list)
        for row in rows:
            providers[row.channel].append(row)
            if row.name not in self._adapters:
                self._adapters[row.name] = make_adapter(row.name, row.channel, row.kind, json.loads(row.config))
        self._providers = dict(providers)
        self._loaded_at = time.monotonic()

    def claim(self, now: datetime) -> list[Any]:
        """Lease up to BATCH_SIZE due deliveries (queued and due, or sending with an expired lease)."""
        d = t.deliveries
        token = new_id()
        due = sa.or_(
            sa.and_(d.c.status == "queued", d.c.due_at <= now),
            sa.and_(d.c.status == "sending", d.c.claimed_until < now),
        )
        pick = sa.select(d.c.id).where(due).order_by(d.c.due_at).limit(self.batch_size)
        if self.engine.dialect.name == "postgresql":
            pick = pick.with_for_update(skip_locked=True)
        with self.engine.begin() as conn:
            ids = [r.id for r in conn.execute(pick)]
            if not ids:
                return []
            conn.execute(
                d.update()
                .where(d.c.id.in_(ids), due)
                .values(status="sending", claimed_by=token, claimed_until=now + self.lease)
            )
            return list(conn.execute(sa.select(d).where(d.c.claimed_by == token, d.c.status == "sending")))

    def run_once(self, now: datetime | None = None) -> int:
        """Claim one batch and send it; the number of deliveries handled."""
        now = now or utcnow()
        self._load_providers()
        fell_back = self.fall_back_undelivered(now)
        rows = self.claim(now)
        if not rows:
            return fell_back
        self._load_providers()
        by_provider: dict[str | None, list[Any]] = defaultdict(list)
        for row in rows:
            by_provider[self._provider_for(row)].append(row)
        for provider, group in by_provider.items():
            if provider is None:
                with self.engine.begin() as conn:
                    for row in group:
                        fall_back_in(self.messaging, conn, row, f"no provider for {row.channel}")
                continue
            messages = [self._out_message(row) for row in group]
            try:
                results = self._adapters[provider].send_batch(messages)
            except Exception as exc:  # an adapter bug must not lose the batch: treat as transient
                results = [SendResult("transient", None, f"{type(exc).__name__}: {exc}") for _ in messages]
            pairs = list(zip(group, results, strict=True))
            with self.engine.begin() as conn:
                self._settle_sent(conn, provider, [(r, x) for r, x in pairs if x.outcome in (SENT, DELIVERED)])
                for row, result in pairs:
                    if result.outcome not in (SENT, DELIVERED):
                        self._settle(conn, row, provider, result)
        return len(rows)

    def _settle_sent(self, conn: sa.Connection, provider: str, done: list[tuple[Any, SendResult]]) -> None:
        """Record accepted messages in bulk: one UPDATE for the batch, one journal append for their events;
        cost is counted for those the provider reports delivered on acceptance."""
        if not done:
            return
        d = t.deliveries
        now = utcnow()
        info = next((p for p in self._providers.get(done[0][0].channel or "", []) if p.name == provider), None)
        params: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        for row, result in done:
            entry = next(c for c in json.loads(row.content) if c["channel"] == row.channel)
            delivered = result.outcome == DELIVERED
            cost: dict[str, Any] = {}
            if delivered and info is not None:
                units = int(entry["fields"].get("sms", {}).get("segments", 1)) if row.channel == "sms" else 1
                cost = {"cost_minor": int(info.cost_minor) * units, "currency": info.currency}
            params.append(
                {
                    "b_id": row.id,
                    "b_claim": row.claimed_by,
                    "b_status": "delivered" if delivered else "sent",
                    "b_pmid": result.provider_message_id,
                    "b_attempts": row.attempts + 1,
                    "b_delivered_at": now if delivered else None,
                    "b_cost": cost.get("cost_minor"),
                    "b_currency": cost.get("currency"),
                }
            )
            request = SendRequest(row.template, broadcast_id=row.broadcast_id, variant=row.variant)
            events.append(delivery_event("sent", entry, row.profile_id, row.id, request, now, {"provider": provider}))
            if delivered:
                events.append(
                    delivery_event(
                        "delivered", entry, row.profile_id, row.id, request, now, {"provider": provider, **cost}
                    )
                )
        conn.execute(
            d.update()
            .where(d.c.id == sa.bindparam("b_id"), d.c.claimed_by == sa.bindparam("b_claim"))
            .values(
                status=sa.bindparam("b_status"),
                sent_at=now,
                provider=provider,
                provider_message_id=sa.bindparam("b_pmid"),
                claimed_by=None,
                attempts=sa.bindparam("b_attempts"),
                delivered_at=sa.bindparam("b_delivered_at"),
                cost_minor=sa.bindparam("b_cost"),
                currency=sa.bindparam("b_currency"),
            ),
            params,
        )
        emit_events(conn, self.messaging.journal, events, now)

    def fall_back_undelivered(self, now: datetime) -> int:
        """Messages a provider accepted but did not report delivered within its `fallback_after_seconds` go to
        the person's next channel (e.g. a push not delivered within an hour becomes an SMS)."""
        waits = {
            p.name: float(json.loads(p.config).get("fallback_after_seconds", 0))
            for rows in self._providers.values()
            for p in rows
            if json.loads(p.config).get("fallback_after_seconds")
        }
        if not waits:
            return 0
        d = t.deliveries
        moved = 0
        with self.engine.begin() as conn:
            for provider, wait in waits.items():
                stale = conn.execute(
                    sa.select(d)
                    .where(
                        d.c.status == "sent",
                        d.c.provider == provider,
                        d.c.delivered_at.is_(None),
                        d.c.sent_at < now - timedelta(seconds=wait),
                    )
                    .limit(self.batch_size)
                ).all()
                for row in stale:
                    if len(json.loads(row.content or "[]")) > 1:
                        fall_back_in(self.messaging, conn, row, f"not delivered by {provider} within {wait:g} s")
                        moved += 1
        return moved

    def _provider_for(self, row: Any) -> str | None:
        candidates = self._providers.get(row.channel or "", [])
        if row.provider and any(p.name == row.provider for p in candidates):
            return str(row.provider)
        return str(candidates[0].name) if candidates else None

    def _next_provider(self, row: Any, current: str) -> str | None:
        names = [p.name for p in self._providers.get(row.channel or "", [])]
        if current in names and names.index(current) + 1 < len(names):
            return str(names[names.index(current) + 1])
        return None

    @staticmethod
    def _out_message(row: Any) -> OutMessage:
        entry = next(c for c in json.loads(row.content) if c["channel"] == row.channel)
        return OutMessage(
            row.id, row.channel, entry["address"], entry["fields"], entry.get("headers", {}), row.profile_id
        )

    def _settle(self, conn: sa.Connection, row: Any, provider: str, result: SendResult) -> None:
        """A failed attempt: retry later, fail over to the next provider, or fall back to the next channel."""
        d = t.deliveries
        where = sa.and_(d.c.id == row.id, d.c.claimed_by == row.claimed_by)
        attempts = row.attempts + 1
        if result.outcome == HARD_BOUNCE:
            fresh = _with(row, provider=provider, status="sent")
            self.messaging.record_state_in(conn, fresh, "bounced", {"bounce": "hard", "error": result.error})
            conn.execute(d.update().where(d.c.id == row.id).values(status="bounced", provider=provider))
            fall_back_in(
                self.messaging, conn, _with(row, status="bounced", provider=provider), f"hard bounce: {result.error}"
            )
            return
        if result.outcome != PERMANENT and attempts < self.attempts_per_provider:
            delay = min(self.backoff * 2 ** (attempts - 1), self.backoff_cap)
            conn.execute(
                d.update()
                .where(where)
                .values(
                    status="queued",
                    attempts=attempts,
                    provider=provider,
                    due_at=utcnow() + timedelta(seconds=delay),
                    claimed_by=None,
                    error=f"{provider}: {result.error}",
                )
            )
            return
        nxt = self._next_provider(row, provider)
        if nxt is not None:
            conn.execute(
                d.update()
                .where(where)
                .values(
                    status="queued",
                    attempts=0,
                    provider=nxt,
                    due_at=utcnow(),
                    claimed_by=None,
                    error=f"{provider}: {result.error}; failing over to {nxt}",
                )
            )
            return
        fall_back_in(
            self.messaging, conn, _with(row, provider=provider), f"{row.channel} providers failed: {result.error}"
        )

    def drain(self, timeout: float = 60.0, until_idle: bool = True) -> int:
        """Send until nothing is due (or TIMEOUT); waits for retries that fall due within the timeout."""
        total = 0
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            handled = self.run_once()
            total += handled
            if handled == 0:
                if until_idle and not self._pending_soon():
                    break
                time.sleep(0.05)
        return total

    def _pending_soon(self) -> bool:
        d = t.deliveries
        soon = utcnow() + timedelta(seconds=self.backoff_cap)
        with self.engine.connect() as conn:
            return (
                conn.execute(
                    sa.select(d.c.id).where(d.c.status.in_(("queued", "sending")), d.c.due_at <= soon).limit(1)
                ).first()
                is not None
            )

    def run_forever(self, stop: threading.Event, idle_sleep: float = 0.5) -> None:
        """Send continuously until STOP is set (the server runs this in a thread)."""
        while not stop.is_set():
            try:
                handled = self.run_once()
            except Exception:  # keep sending after a transient store error
                handled = 0
                stop.wait(idle_sleep)
            if handled == 0:
                stop.wait(idle_sleep)
        self.close()

    def close(self) -> None:
        """Close every adapter's connections."""
        for adapter in self._adapters.values():
            adapter.close()
        self._adapters.clear()


class _Row:
    def __init__(self, row: Any, changes: dict[str, Any]) -> None:
        self._row = row
        self._changes = changes

    def __getattr__(self, name: str) -> Any:
        if name in self._changes:
            return self._changes[name]
        return getattr(self._row, name)


def _with(row: Any, **changes: Any) -> Any:
    """ROW with some attributes replaced (rows are immutable)."""
    return _Row(row, changes)
