"""Points from the purchase history: past orders and returns earn and reverse as if the program had run then.

Reads the order events already in the event store for a time range, in time order, and hands each to the same
rules as the live listener (`orders.order_action`) and the same write path (`LoyaltyService.earn_op` /
`reverse_op` with the purchase's time): each earn is dated at its purchase and its lot expires counting from
that date; a customer's lots that came due before a purchase expire first, dated at their expiry; after the
last purchase, every lot due by the end of the range (at most now) expires, dated at its expiry. Tiers follow as
they would have. The idempotency keys are the live path's (`order:<id>:earn`, `order:<id>:reverse:<return>`), so
a second run, or the live listener meeting the same orders later, never earns twice. Operations go through the
group committer in pages: hundreds of purchases share one transaction, each in its own savepoint.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from accord.loyalty import tables as t
from accord.loyalty.orders import EARN_EVENTS, REVERSE_EVENTS, OrderEarn, OrderReversal, order_action
from accord.loyalty.service import LoyaltyError, LoyaltyService
from accord.storage import utcnow
from accord.storage.events import EventStore

_running = threading.Lock()  # one backfill at a time in a process (a second is refused, not queued)
PAGE = 5_000  # order events read and written per page (the committer groups them into transactions)
_NAMES = EARN_EVENTS + REVERSE_EVENTS
_COLUMNS = (
    "timestamp, journal_seq, event_id, event, profile_id, channel, revenue_minor, currency, store_id, message_id, raw"
)
Progress = Callable[[int, int], None]


def parse_time(text: str | None, name: str) -> datetime | None:
    """A date (YYYY-MM-DD: midnight UTC) or an ISO 8601 time (UTC unless it carries an offset); None if empty."""
    if text is None or not text.strip():
        return None
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise LoyaltyError(
            400, "invalid_date", f"{name}: {text!r} is not a date (YYYY-MM-DD) or an ISO 8601 time"
        ) from exc
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _check(loyalty: LoyaltyService, since: datetime | None, until: datetime | None) -> None:
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise LoyaltyError(400, "invalid_date", f"{name} needs a time zone")
    if since is not None and until is not None and until <= since:
        raise LoyaltyError(
            400, "invalid_range", f"until ({until.isoformat()}) must be after since ({since.isoformat()})"
        )
    if not loyalty.enabled():
        raise LoyaltyError(
            409, "no_program", "no loyalty program is configured: set one (PUT /api/v1/loyalty/program) first"
        )


def _range(since: datetime | None, until: datetime | None) -> tuple[str, list[Any]]:
    sql = f"event IN ({', '.join('?' for _ in _NAMES)})"
    params: list[Any] = list(_NAMES)
    if since is not None:
        sql += " AND timestamp >= ?"
        params.append(since)
    if until is not None:
        sql += " AND timestamp < ?"
        params.append(until)
    return sql, params


def plan(
    loyalty: LoyaltyService, events: EventStore, since: datetime | None = None, until: datetime | None = None
) -> dict[str, Any]:
    """What a backfill of [SINCE, UNTIL) would read: its order events per calendar month (UTC), oldest first,
    and the range with UNTIL resolved (now when not given), so a client can run it month by month."""
    _check(loyalty, since, until)
    until = until or utcnow()
    where, params = _range(since, until)
    months: Counter[str] = Counter()
    for (at,) in events.query(f"SELECT timestamp FROM events WHERE {where}", params):
        months[at.astimezone(UTC).strftime("%Y-%m")] += 1
    return {
        "since": since,
        "until": until,
        "order_events": sum(months.values()),
        "months": [{"month": m, "order_events": n} for m, n in sorted(months.items())],
    }


def _expired(loyalty: LoyaltyService) -> tuple[int, int]:
    ledger = t.loyalty_ledger.c
    with loyalty.state.connect() as conn:
        count, points = conn.execute(
            sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(ledger.points), 0)).where(ledger.kind == "expire")
        ).one()
    return int(count), -int(points)


def backfill(
    loyalty: LoyaltyService,
    events: EventStore,
    since: datetime | None = None,
    until: datetime | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Earn and reverse the points of the order events in [SINCE, UNTIL) as if the program had run then (see the
    module's docstring); returns what was written. Running it again writes nothing."""
    _check(loyalty, since, until)
    if not _running.acquire(blocking=False):
        raise LoyaltyError(409, "backfill_running", "a backfill is running; run this one when it has finished")
    try:
        return _backfill(loyalty, events, since, until, progress)
    finally:
        _running.release()


def _backfill(
    loyalty: LoyaltyService,
    events: EventStore,
    since: datetime | None,
    until: datetime | None,
    progress: Progress | None,
) -> dict[str, Any]:
    started = time.perf_counter()
    now = utcnow()
    horizon = min(until, now) if until is not None else now  # lots due by then expire
    where, params = _range(since, until)
    total = int(events.query(f"SELECT count(*) FROM events WHERE {where}", params)[0][0])
    expired_before = _expired(loyalty)
    tally: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    profiles: set[str] = set()
    done = 0
    after: tuple[Any, ...] | None = None
    if progress is not None:
        progress(0, total)
    while True:
        page_sql, page_params = f"SELECT {_COLUMNS} FROM events WHERE {where}", list(params)
        if after is not None:
            page_sql += " AND (timestamp, journal_seq, event_id) > (?, ?, ?)"
            page_params += list(after)
        rows = events.query(page_sql + " ORDER BY timestamp, journal_seq, event_id LIMIT ?", [*page_params, PAGE])
        if not rows:
            break
        after = rows[-1][:3]
        pending: list[tuple[str, Future[Any]]] = []
        for at, _seq, _eid, event, profile_id, channel, revenue_minor, currency, store_id, message_id, raw in rows:
            action = order_action(event, profile_id, channel, revenue_minor, currency, store_id, message_id, raw)
            when = min(at, now)  # a purchase stamped in the future (a skewed clock) is dated now
            try:
                if isinstance(action, OrderEarn):
                    op: Callable[[sa.Connection], Any] = loyalty.earn_op(action.profile_id, action.request, at=when)
                    profiles.add(action.profile_id)
                    pending.append(("earn", loyalty.committer.submit(op)))
                elif isinstance(action, OrderReversal):
                    op = loyalty.reverse_op(
                        action.order_id, action.idempotency_key, action.amount_minor, action.reason, at=when
                    )
                    pending.append(("reverse", loyalty.committer.submit(op)))
                else:
                    tally["ignored"] += 1
            except LoyaltyError as exc:  # refused up front (unknown or merged profile, bad currency)
                skipped[exc.code] += 1
        for kind, future in pending:
            try:
                entry = future.result()
            except LoyaltyError as exc:
                skipped[exc.code] += 1
                continue
            if entry is None:
                tally["ignored"] += 1
            elif entry.get("replayed"):
                tally["already_done"] += 1
            elif kind == "earn":
                tally["earned"] += 1
                tally["points_earned"] += entry["points"]
            else:
                tally["reversed"] += 1
                tally["points_reversed"] -= entry["points"]
        done += len(rows)
        if progress is not None:
            progress(done, total)
    loyalty.expire_as_of(horizon)
    expired_after = _expired(loyalty)
    seconds = time.perf_counter() - started
    return {
        "since": since,
        "until": until,
        "expired_until": horizon,
        "order_events": done,
        "earned": tally["earned"],
        "points_earned": tally["points_earned"],
        "reversed": tally["reversed"],
        "points_reversed": tally["points_reversed"],
        "expired_lots": expired_after[0] - expired_before[0],
        "points_expired": expired_after[1] - expired_before[1],
        "already_done": tally["already_done"],
        "ignored": tally["ignored"],
        "skipped": dict(sorted(skipped.items())),
        "customers": len(profiles),
        "tiers": {row["tier"]: row["accounts"] for row in loyalty.members_by_tier()["tiers"]},  # accounts now
        "seconds": round(seconds, 2),
        "order_events_per_second": round(done / seconds) if seconds > 0 else None,
    }
