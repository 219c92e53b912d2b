"""Offers and coupons on the real state store (SQLite and PostgreSQL): rules, codes, redemption, events."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from accord.offers.service import CouponRequest, OfferError, OfferSpec, active_offers, create_offer, generate_codes
from accord.platform import Platform
from accord.storage import utcnow


def _problems(verdict: object) -> list[str]:
    return [p["code"] for p in verdict.problems]  # type: ignore[attr-defined]


def test_shared_code_redeems_once_per_key_and_respects_the_customer_limit(
    platform: Platform, make_profile: Callable[[str], str]
) -> None:
    ann = make_profile("ann")
    offer = create_offer(
        platform.state,
        OfferSpec(name="Spring 10%", code="spring10", discount_value=1000, currency="PLN", per_customer_limit=1),
    )
    assert offer["code"] == "SPRING10"
    request = CouponRequest(code=" Spring10 ", channel="web", profile_id=ann, basket_minor=20000, currency="pln")
    verdict = platform.offers.validate(request)
    assert verdict.valid and verdict.discount_minor == 2000
    assert "shared code of offer 'Spring 10%'" in verdict.reasons
    first = platform.offers.redeem(request, "key-1")
    again = platform.offers.redeem(request, "key-1")  # a retry: same answer, nothing redeemed twice
    assert again["id"] == first["id"] and again["replayed"] and not first["replayed"]
    with pytest.raises(OfferError) as err:
        platform.offers.redeem(request, "key-2")
    assert (err.value.status, err.value.code) == (409, "limit_reached")
    assert _problems(platform.offers.validate(request)) == ["limit_reached"]
    with pytest.raises(OfferError) as err:
        platform.offers.redeem(CouponRequest(code="OTHER", channel="web"), "key-1")
    assert err.value.code == "idempotency_key_reused"
    # an anonymous customer cannot use a per-customer-limited offer
    assert _problems(platform.offers.validate(CouponRequest(code="SPRING10", channel="web"))) == ["customer_required"]


def test_unique_codes_are_single_use(platform: Platform) -> None:
    offer = create_offer(platform.state, OfferSpec(name="Welcome", code_policy="unique", discount_kind="amount",
                                                   discount_value=1500, currency="EUR"))  # fmt: skip
    codes = generate_codes(platform.state, offer["id"], 500)
    assert len(set(codes)) == 500 and all(len(c) == 10 for c in codes)
    request = CouponRequest(code=codes[7].lower(), channel="store", store_id="S1", basket_minor=1000)
    done = platform.offers.redeem(request, "till-1")
    assert done["discount_minor"] == 1000  # never more than the basket
    with pytest.raises(OfferError) as err:
        platform.offers.redeem(request, "till-2")  # the second till
    assert (err.value.status, err.value.code) == (409, "already_redeemed")
    assert platform.offers.redeem(request, "till-1")["id"] == done["id"]  # the first till's retry
    assert platform.offers.validate(CouponRequest(code=codes[8], channel="app")).valid
    with pytest.raises(OfferError) as err:
        platform.offers.redeem(CouponRequest(code="NOPE", channel="app"), "k")
    assert (err.value.status, err.value.code) == (404, "unknown_code")
    with pytest.raises(OfferError) as err:
        generate_codes(platform.state, create_offer(platform.state, OfferSpec(name="x"))["id"], 3)
    assert err.value.code == "shared_code_offer"


def test_validity_rules_say_why(platform: Platform, make_profile: Callable[[str], str]) -> None:
    ann, bob = make_profile("ann"), make_profile("bob")
    now = utcnow()
    create_offer(
        platform.state,
        OfferSpec(
            name="VIP at Mokotów",
            code="VIP",
            currency="PLN",
            starts_at=now - timedelta(days=1),
            ends_at=now + timedelta(days=1),
            channels=["store", "call centre"],
            stores=["S1"],
            segments=["vip"],
            min_basket_minor=10000,
        ),
    )
    platform.offers.in_segment = lambda pid, segment: pid == ann and segment == "vip"
    good = CouponRequest(code="vip", channel="store", store_id="S1", profile_id=ann, basket_minor=15000, currency="PLN")
    verdict = platform.offers.validate(good)
    assert verdict.valid, verdict.problems
    assert {"valid on channel store", "valid at store S1", "customer is in segment vip"} <= set(verdict.reasons)
    assert platform.offers.validate(CouponRequest(**{**good.__dict__, "channel": "call_center"})).valid
    cases = {
        "channel_not_allowed": {"channel": "web"},
        "store_not_allowed": {"store_id": "S2"},
        "not_in_segment": {"profile_id": bob},
        "basket_too_small": {"basket_minor": 9999},
        "currency_mismatch": {"currency": "EUR"},
    }
    for code, change in cases.items():
        assert _problems(platform.offers.validate(CouponRequest(**{**good.__dict__, **change}))) == [code], code
    assert _problems(platform.offers.validate(good, at=now + timedelta(days=2))) == ["expired"]
    assert _problems(platform.offers.validate(good, at=now - timedelta(days=2))) == ["not_started"]
    with pytest.raises(OfferError) as err:
        platform.offers.redeem(CouponRequest(**{**good.__dict__, "store_id": "S2"}), "k1")
    assert (err.value.status, err.value.code) == (422, "store_not_allowed")
    assert err.value.detail and err.value.detail["valid"] is False
    with pytest.raises(OfferError) as err:
        platform.offers.validate(CouponRequest(code="VIP", channel="carrier pigeon"))
    assert err.value.code == "invalid_channel"


def test_assigned_offer_is_active_at_the_store_with_the_message_that_sent_it(
    platform: Platform, make_profile: Callable[[str], str]
) -> None:
    from accord.offers.service import assign

    sarah = make_profile("sarah")
    offer = create_offer(
        platform.state,
        OfferSpec(name="Welcome in", code_policy="unique", stores=["S1"], channels=["store"], currency="PLN",
                  ends_at=utcnow() + timedelta(hours=2)),
    )  # fmt: skip
    generate_codes(platform.state, offer["id"], 3)
    given = assign(
        platform.state, platform.journal, offer["id"], sarah, message_id="msg-42", delivery_channel="push",
        note="when you entered the store",
    )  # fmt: skip
    assert assign(platform.state, platform.journal, offer["id"], sarah, code=given["code"])["id"] == given["id"]
    here = active_offers(platform.state, sarah, "S1", "store", utcnow())
    assert [o["code"] for o in here] == [given["code"]]
    assert here[0]["message_id"] == "msg-42" and here[0]["why"][0].startswith("sent by push on ")
    assert "when you entered the store" in here[0]["why"][0] and "valid at store S1" in here[0]["why"]
    assert active_offers(platform.state, sarah, "S2", "store", utcnow()) == []  # another store
    assert active_offers(platform.state, sarah, "S1", "web", utcnow()) == []  # another channel
    # someone else presenting Sarah's code is refused
    other = make_profile("other")
    request = CouponRequest(code=given["code"], channel="store", store_id="S1", profile_id=other)
    assert _problems(platform.offers.validate(request)) == ["assigned_to_other"]
    platform.offers.redeem(CouponRequest(code=given["code"], channel="store", store_id="S1"), "pos-1")
    assert active_offers(platform.state, sarah, "S1", "store", utcnow()) == []  # used: no longer active

    # the redemption is on Sarah's timeline, labelled with the till's channel (anonymous at the till, her code)
    assert platform.processor.drain()
    events = platform.events.timeline(sarah).events
    assert [(e["event"], e["channel"]) for e in events if e["event"] != "Identify"][-2:] == [
        ("Offer Assigned", "push"),
        ("Coupon Redeemed", "store"),
    ]
