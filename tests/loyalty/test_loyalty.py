"""Loyalty on the real stores (SQLite and PostgreSQL): ledger, rules, tiers, rewards, expiry, points from orders."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
import sqlalchemy as sa

from accord.collect.emit import emit
from accord.loyalty import tables as t
from accord.loyalty.service import EarnRequest, LoyaltyError
from accord.platform import Platform
from accord.storage import utcnow

PROGRAM = {
    "points_per_unit": {"default": 1, "EUR": 4},
    "channel_multipliers": {"app": 2},
    "category_multipliers": {"books": 3},
    "tier_multipliers": {"gold": 1.5},
    "tiers": [{"name": "member", "threshold": 0}, {"name": "gold", "threshold": 500}],
    "expiry_days": 365,
}


def _ledger_sum(platform: Platform, pid: str) -> int:
    with platform.state.connect() as conn:
        total = conn.execute(
            sa.select(sa.func.coalesce(sa.func.sum(t.loyalty_ledger.c.points), 0)).where(
                t.loyalty_ledger.c.profile_id == pid
            )
        ).scalar_one()
        lots = conn.execute(
            sa.select(sa.func.coalesce(sa.func.sum(t.loyalty_lots.c.remaining), 0)).where(
                t.loyalty_lots.c.profile_id == pid
            )
        ).scalar_one()
    assert int(lots) == int(total), "lots must hold exactly the balance"
    return int(total)


def test_earn_rules_tiers_and_idempotency(platform: Platform, make_profile: Callable[[str], str]) -> None:
    loyalty = platform.loyalty
    loyalty.configure(PROGRAM)
    ann = make_profile("ann")
    first = loyalty.earn(ann, EarnRequest("e1", "app", amount_minor=12_345, currency="PLN"))  # 123.45 PLN x2 (app)
    assert (first["points"], first["balance_after"], first["tier"]) == (246, 246, "member")
    assert loyalty.earn(ann, EarnRequest("e1", "app", amount_minor=12_345, currency="PLN"))["replayed"]
    books = loyalty.earn(ann, EarnRequest("e2", "store", lines=[(1000, "Books"), (1000, "toys")], currency="EUR"))
    assert books["points"] == 10 * 4 * 3 + 10 * 4  # per-category multiplier
    up = loyalty.earn(ann, EarnRequest("e3", "web", points=300))
    assert (up["balance_after"], up["tier"]) == (246 + 160 + 300, "gold")
    gold = loyalty.earn(ann, EarnRequest("e4", "web", amount_minor=10_000, currency="PLN"))
    assert gold["points"] == 150  # gold earns x1.5
    account = loyalty.account(ann)
    assert account["balance"] == _ledger_sum(platform, ann) == 856 and account["tier"] == "gold"
    assert account["next_tier"] is None and account["next_expiry"]["points"] == 246
    with pytest.raises(LoyaltyError) as err:
        loyalty.earn(ann, EarnRequest("e5", "store", amount_minor=100))
    assert err.value.code == "invalid_currency"
    with pytest.raises(LoyaltyError) as err:
        loyalty.configure({"tiers": [{"name": "x", "threshold": 5}]})
    assert err.value.code == "invalid_program"
    with pytest.raises(LoyaltyError) as err:
        loyalty.account("01NOSUCHPROFILE00000000000")
    assert err.value.status == 404


def test_burn_never_goes_below_zero_and_uses_soonest_expiring_points(
    platform: Platform, make_profile: Callable[[str], str]
) -> None:
    loyalty = platform.loyalty
    loyalty.configure({**PROGRAM, "expiry_days": 30})
    bob = make_profile("bob")
    loyalty.earn(bob, EarnRequest("a", "store", points=100))
    loyalty.adjust(bob, 50, "goodwill", reason="late delivery")  # no expiry
    with pytest.raises(LoyaltyError) as err:
        loyalty.burn(bob, 151, "b1", "store")
    assert (err.value.status, err.value.code) == (409, "insufficient_points")
    spent = loyalty.burn(bob, 120, "b1", "store", store_id="S1")
    assert spent["balance_after"] == 30 and spent["points"] == -120
    assert loyalty.burn(bob, 120, "b1", "store")["replayed"]  # the till pressed twice
    with pytest.raises(LoyaltyError) as err:
        loyalty.burn(bob, 5, "b1", "store")
    assert err.value.code == "idempotency_key_reused"
    # the 100 expiring points were used first: nothing is left to expire in 31 days
    assert loyalty.expire(utcnow() + timedelta(days=31)) == 0
    loyalty.earn(bob, EarnRequest("c", "store", points=40))
    assert loyalty.expire(utcnow() + timedelta(days=31)) == 1
    assert loyalty.expire(utcnow() + timedelta(days=31)) == 0  # idempotent
    account = loyalty.account(bob)
    assert account["balance"] == 30 == _ledger_sum(platform, bob)
    assert [e["kind"] for e in loyalty.ledger(bob)] == ["expire", "earn", "burn", "adjust", "earn"]
    with pytest.raises(LoyaltyError) as err:
        loyalty.adjust(bob, -31, "fix", reason="typo")
    assert err.value.code == "insufficient_points"


def test_a_reward_cannot_be_spent_twice(platform: Platform, make_profile: Callable[[str], str]) -> None:
    loyalty = platform.loyalty
    cat = make_profile("cat")
    loyalty.earn(cat, EarnRequest("e", "app", points=500))
    mug = loyalty.add_reward("Mug", 200, stock=1)
    claim = loyalty.claim_reward(cat, mug["id"], "claim-1", "app")
    assert loyalty.claim_reward(cat, mug["id"], "claim-1", "app")["id"] == claim["id"]  # retry: same claim
    with pytest.raises(LoyaltyError) as err:
        loyalty.claim_reward(cat, mug["id"], "claim-2", "app")
    assert err.value.code == "reward_out_of_stock"
    assert loyalty.use_claim(claim["id"], "store", "S1")["used_store_id"] == "S1"
    with pytest.raises(LoyaltyError) as err:
        loyalty.use_claim(claim["id"], "store", "S2")
    assert (err.value.status, err.value.code) == (409, "claim_used")
    assert loyalty.account(cat)["balance"] == 300 == _ledger_sum(platform, cat)


def test_points_follow_orders_and_returns(platform: Platform, make_profile: Callable[[str], str]) -> None:
    loyalty = platform.loyalty
    loyalty.configure(PROGRAM)
    dan = make_profile("dan")

    def send(event: str, message_id: str, **properties: object) -> None:
        with platform.state.begin() as conn:
            emit(conn, platform.journal, "test-shop", "web", [
                {"event": event, "userId": "dan", "messageId": message_id, "properties": properties}
            ])  # fmt: skip
        assert platform.processor.drain()

    products = [{"sku": "b1", "price": 50, "quantity": 2, "category": "books"}]
    send("Order Completed", "m1", order_id="o-1", revenue=100, currency="PLN", products=products)
    assert loyalty.account(dan)["balance"] == 300  # 100 PLN of books x3
    send("Order Completed", "m1-again", order_id="o-1", revenue=100, currency="PLN", products=products)
    assert loyalty.account(dan)["balance"] == 300  # the same order never earns twice
    send("Order Returned", "m2", order_id="o-1", revenue=50, currency="PLN")  # one of two books back, in a store
    assert loyalty.account(dan)["balance"] == 150
    loyalty.burn(dan, 100, "spend", "store")
    send("Order Refunded", "m3", order_id="o-1")  # the rest: 150 wanted, only 50 left
    account = loyalty.account(dan)
    assert account["balance"] == 0 == _ledger_sum(platform, dan)
    reverse = account["recent_entries"][0]
    assert reverse["kind"] == "reverse" and reverse["detail"]["shortfall"] == 100
    send("Order Refunded", "m4", order_id="o-1")  # nothing left to reverse
    assert [e["kind"] for e in loyalty.ledger(dan)] == ["reverse", "burn", "reverse", "earn"]
    events = [e for e in platform.events.timeline(dan, limit=100).events if (e["event"] or "").startswith("Loyalty")]
    assert [(e["event"], e["channel"]) for e in events][:2] == [
        ("Loyalty Points Earned", "web"),
        ("Loyalty Points Reversed", "other"),
    ]
