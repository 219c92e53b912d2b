"""The history backfill against its oracle: the live path with the program configured before the same purchases.

The oracle sends each order event through the real pipeline (journal, processor, the `OrderPoints` listener) with
the loyalty clock set to the purchase's time, and runs the daily expiry at the moment each lot comes due; the
backfill reads the same events from the event store afterwards. Both must leave the same ledger (kinds, points,
balances after, dates, expiries, keys), lots, orders, accounts and tiers, and the same timeline events.
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

import accord.loyalty.service as loyalty_service
from accord.collect.emit import emit
from accord.loyalty import tables as t
from accord.loyalty.history import backfill, parse_time, plan
from accord.loyalty.service import LoyaltyError
from accord.platform import Platform
from accord.storage import utcnow

PROGRAM = {
    "points_per_unit": {"default": 1, "EUR": 4},
    "channel_multipliers": {"app": 2},
    "category_multipliers": {"books": 3},
    "tier_multipliers": {"silver": 1.25, "gold": 1.5},
    "tiers": [{"name": "member", "threshold": 0}, {"name": "silver", "threshold": 800},
              {"name": "gold", "threshold": 2500}],
    "expiry_days": 60,
}  # fmt: skip
SOURCES = {"web": "test-web", "app": "test-app", "store": "test-pos"}
USERS = ("ann", "bob", "cat", "dan")


def _history(seed: int, now: datetime) -> list[tuple[datetime, str, dict[str, Any]]]:
    """Order events over the last ~400 days in time order: orders (some with product lines, some in EUR), the
    same order sent twice, partial returns (refund_minor), refunds as negative revenue, cancellations, a
    return of an order whose points have expired or been reversed, and an anonymous receipt."""
    rng = random.Random(seed)
    at = now - timedelta(days=400)
    orders: list[tuple[str, str, str]] = []  # (order id, user, channel)
    out: list[tuple[datetime, str, dict[str, Any]]] = []
    for i in range(48):
        at += timedelta(hours=rng.uniform(12, 190))
        roll = rng.random()
        if roll < 0.62 or len(orders) < 3:
            user, channel = rng.choice(USERS), rng.choice(list(SOURCES))
            order_id = f"o-{seed}-{i}"
            currency = "EUR" if rng.random() < 0.2 else "PLN"
            props: dict[str, Any] = {"order_id": order_id, "currency": currency}
            if rng.random() < 0.4:
                props["products"] = [
                    {"sku": f"s{n}", "price": rng.randint(5, 90), "quantity": rng.randint(1, 3),
                     "category": rng.choice(["books", "toys", "shoes"])}
                    for n in range(rng.randint(1, 3))
                ]  # fmt: skip
                props["revenue"] = sum(p["price"] * p["quantity"] for p in props["products"])
            else:
                props["revenue"] = rng.randint(20, 600)
            orders.append((order_id, user, channel))
            out.append((at, "Order Completed", {"userId": user, "channel": channel, "properties": props}))
        elif roll < 0.68:  # the same order sent again (another message): it earns once
            order_id, user, channel = rng.choice(orders)
            again = next(m for _, e, m in out if e == "Order Completed" and m["properties"]["order_id"] == order_id)
            out.append((at, "Order Completed", again))
        elif roll < 0.82:  # a partial return, in any channel
            order_id, user, _ = rng.choice(orders)
            back = {"order_id": order_id, "return_id": f"r-{i}", "refund_minor": rng.randint(500, 15_000)}
            out.append((at, "Order Returned", {"userId": user, "channel": "store", "properties": back}))
        elif roll < 0.9:  # a refund carrying the amount as negative revenue
            order_id, user, _ = rng.choice(orders)
            props = {"order_id": order_id, "revenue": -rng.randint(5, 200), "currency": "PLN"}
            out.append((at, "Order Refunded", {"userId": user, "channel": "web", "properties": props}))
        elif roll < 0.96:
            order_id, user, _ = rng.choice(orders)
            out.append((at, "Order Cancelled", {"userId": user, "channel": "web",
                                                "properties": {"order_id": order_id}}))  # fmt: skip
        else:  # a receipt without a known customer earns nothing
            props = {"order_id": f"anon-{i}", "revenue": 100, "currency": "PLN"}
            out.append((at, "Order Completed", {"anonymousId": f"till-{i}", "channel": "store", "properties": props}))
    assert at < now
    return out


def _send(platform: Platform, at: datetime, event: str, message: dict[str, Any], n: int) -> None:
    body = {k: v for k, v in message.items() if k != "channel"}
    body |= {"event": event, "messageId": f"m-{n}", "timestamp": at.isoformat()}
    with platform.state.begin() as conn:
        emit(conn, platform.journal, SOURCES[message["channel"]], message["channel"], [body])
    assert platform.processor.drain()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[datetime | None]]:
    """The loyalty domain's clock: set [0] to a time to write as of it (None: the real time)."""
    now: list[datetime | None] = [None]
    monkeypatch.setattr(loyalty_service, "utcnow", lambda: now[0] or utcnow())
    yield now


def _live(platform: Platform, history: list[tuple[datetime, str, dict[str, Any]]], now: datetime,
          clock: list[datetime | None]) -> None:  # fmt: skip
    """The oracle: each event arrives at its time; the expiry job runs the moment a lot comes due."""
    lots = t.loyalty_lots.c

    def expire_until(upto: datetime) -> None:
        while True:
            with platform.state.connect() as conn:
                due = conn.execute(
                    sa.select(sa.func.min(lots.expires_at)).where(lots.remaining > 0, lots.expires_at <= upto)
                ).scalar()
            if due is None:
                return
            clock[0] = due
            platform.loyalty.expire(at=due)

    for n, (at, event, message) in enumerate(history):
        expire_until(at)
        clock[0] = at
        _send(platform, at, event, message, n)
    expire_until(now)
    clock[0] = None
    assert platform.processor.drain()


def _snapshot(platform: Platform, after_seq: int = 0) -> dict[str, Any]:
    """Everything the loyalty domain holds, ids replaced by the keys they stand for; its timeline events after
    AFTER_SEQ (journal seq)."""
    with platform.state.connect() as conn:
        ledger = conn.execute(sa.select(t.loyalty_ledger).order_by(t.loyalty_ledger.c.id)).mappings().all()
        key_of = {e["id"]: e["idempotency_key"] for e in ledger}
        entries = [
            {**{k: v for k, v in e.items() if k != "id"},
             "idempotency_key": e["idempotency_key"].split(":")[0] + ":" + key_of.get(e["idempotency_key"][7:], "?")
             if e["kind"] == "expire" else e["idempotency_key"]}
            for e in ledger
        ]  # fmt: skip
        lots = sorted(
            (key_of[r.entry_id], r.profile_id, r.expires_at, r.remaining)
            for r in conn.execute(sa.select(t.loyalty_lots))
        )
        accounts = sorted(tuple(r) for r in conn.execute(sa.select(t.loyalty_accounts)))
        orders = sorted(tuple(r) for r in conn.execute(sa.select(t.loyalty_orders)))
    assert platform.processor.drain()
    rows = platform.events.query(
        "SELECT event, timestamp, profile_id, channel, raw FROM events "
        "WHERE event LIKE 'Loyalty%' AND journal_seq > ? ORDER BY timestamp, event",
        [after_seq],
    )
    events = []
    for event, at, profile_id, channel, raw in rows:
        props = json.loads(raw)["properties"]
        props.pop("entry_id", None)
        events.append((event, at, profile_id, channel, json.dumps(props, sort_keys=True)))
    return {"ledger": entries, "lots": lots, "accounts": accounts, "orders": orders, "events": sorted(events)}


def _forget_points(platform: Platform) -> int:
    """Empty the loyalty domain's ledger (the program and the listener's cursor stay); returns the journal seq."""
    with platform.state.begin() as conn:
        for table in (t.loyalty_ledger, t.loyalty_lots, t.loyalty_accounts, t.loyalty_orders):
            conn.execute(table.delete())
    assert platform.processor.drain()
    return platform.events.cursors()[0]


@pytest.mark.parametrize("seed", [3, 17])
def test_backfill_equals_the_live_path_with_the_program_running_all_along(
    platform: Platform, make_profile: Callable[[str], str], clock: list[datetime | None], seed: int
) -> None:
    for user in USERS:
        make_profile(user)
    now = utcnow()
    history = _history(seed, now)
    platform.loyalty.configure(PROGRAM)
    _live(platform, history, now, clock)
    live = _snapshot(platform)
    kinds = {e["kind"] for e in live["ledger"]}
    assert kinds == {"earn", "reverse", "expire"}, kinds  # the history exercises every rule
    assert any(json.loads(e["detail"] or "{}").get("shortfall") for e in live["ledger"] if e["kind"] == "reverse")
    multipliers = {json.loads(e["detail"])["tier_multiplier"] for e in live["ledger"] if e["kind"] == "earn"}
    assert multipliers == {1.0, 1.25, 1.5}  # earned in every tier: tiers changed along the way

    seq = _forget_points(platform)
    report = backfill(platform.loyalty, platform.events)
    assert _snapshot(platform, seq) == live
    earns = sum(1 for e in live["ledger"] if e["kind"] == "earn")
    sent_again = sum(1 for _, e, m in history if e == "Order Completed" and "userId" in m) - earns
    assert (report["earned"], report["skipped"]) == (earns, {})
    assert report["already_done"] >= sent_again  # the same order again (and a second cancellation) replay
    assert report["points_earned"] == sum(e["points"] for e in live["ledger"] if e["kind"] == "earn")
    assert report["expired_lots"] == sum(1 for e in live["ledger"] if e["kind"] == "expire")
    assert sum(report["tiers"].values()) == len(live["accounts"])

    # running it again, over a part of the range or the whole, changes nothing
    again = backfill(platform.loyalty, platform.events, since=history[len(history) // 2][0])
    assert (again["earned"], again["reversed"], again["expired_lots"]) == (0, 0, 0) and again["already_done"] > 0
    last = backfill(platform.loyalty, platform.events)
    assert last["already_done"] == report["earned"] + report["reversed"] + report["already_done"]
    assert _snapshot(platform, seq) == live


def test_backfill_month_by_month_equals_one_run(
    platform: Platform, make_profile: Callable[[str], str], clock: list[datetime | None]
) -> None:
    """Each run expires what came due by its end, so consecutive ranges add up to the whole range."""
    for user in USERS:
        make_profile(user)
    now = utcnow()
    for n, (at, event, message) in enumerate(_history(5, now)):
        _send(platform, at, event, message, n)  # loaded before any program: they earn nothing live
    platform.loyalty.configure(PROGRAM)
    assert platform.loyalty.members_by_tier()["accounts"] == 0
    whole = backfill(platform.loyalty, platform.events)
    one = _snapshot(platform)
    _forget_points(platform)
    months = plan(platform.loyalty, platform.events)
    assert months["order_events"] == whole["order_events"] and len(months["months"]) > 6
    bounds = [None, *(parse_time(m["month"] + "-01", "since") for m in months["months"][1:]), months["until"]]
    for since, until in itertools.pairwise(bounds):
        backfill(platform.loyalty, platform.events, since=since, until=until)
    assert {k: v for k, v in _snapshot(platform).items() if k != "events"} == {
        k: v for k, v in one.items() if k != "events"
    }


def test_live_orders_after_a_backfill_never_earn_twice(platform: Platform, make_profile: Callable[[str], str]) -> None:
    ann = make_profile("ann")
    bought = utcnow() - timedelta(days=30)
    props = {"order_id": "o-1", "revenue": 200, "currency": "PLN"}
    _send(platform, bought, "Order Completed", {"userId": "ann", "channel": "web", "properties": props}, 1)
    platform.loyalty.configure({"points_per_unit": {"default": 1}, "expiry_days": 365})
    assert platform.loyalty.account(ann)["balance"] == 0  # loaded before the program
    backfill(platform.loyalty, platform.events)
    account = platform.loyalty.account(ann)
    entry = account["recent_entries"][0]
    assert account["balance"] == 200 and entry["created_at"] == bought
    assert entry["expires_at"] == bought + timedelta(days=365)
    # the same order arrives again live (another message id): the listener replays the backfilled key
    _send(platform, utcnow(), "Order Completed", {"userId": "ann", "channel": "web", "properties": props}, 2)
    assert platform.loyalty.account(ann)["balance"] == 200
    # a return of it arriving now reverses what the backfill earned (story 17)
    back = {"order_id": "o-1", "return_id": "r-1", "refund_minor": 5_000}
    _send(platform, utcnow(), "Order Returned", {"userId": "ann", "channel": "store", "properties": back}, 3)
    assert platform.loyalty.account(ann)["balance"] == 150
    assert backfill(platform.loyalty, platform.events)["earned"] == 0  # and the return is not taken twice
    assert platform.loyalty.account(ann)["balance"] == 150
    timeline = platform.events.timeline(ann, limit=100).events
    earned = [e for e in timeline if e["event"] == "Loyalty Points Earned"]
    assert len(earned) == 1 and earned[0]["timestamp"] == bought  # on the timeline at the purchase's date


def test_bad_input_is_refused_and_writes_nothing(platform: Platform) -> None:
    with pytest.raises(LoyaltyError) as err:
        backfill(platform.loyalty, platform.events)
    assert (err.value.status, err.value.code) == (409, "no_program")
    platform.loyalty.configure({})
    for text in ("2025-13-01", "yesterday", "01/02/2025"):
        with pytest.raises(LoyaltyError) as err:
            parse_time(text, "since")
        assert (err.value.status, err.value.code) == (400, "invalid_date") and text in err.value.message
    since = parse_time("2025-06-01", "since")
    assert since is not None and since.isoformat() == "2025-06-01T00:00:00+00:00"
    assert parse_time("2025-06-01T10:00:00+02:00", "until") == since + timedelta(hours=8)
    with pytest.raises(LoyaltyError) as err:
        backfill(platform.loyalty, platform.events, since=since, until=since - timedelta(days=1))
    assert (err.value.status, err.value.code) == (400, "invalid_range")
    assert platform.loyalty.members_by_tier()["accounts"] == 0
