"""Offers and coupons: create offers, generate codes, assign them to profiles, validate and redeem from any channel.

Every change goes through this module, in one transaction with the events it emits. Redemptions run through
the platform's group committer (one fsync for many redemptions), each in its own savepoint.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from babel.numbers import get_currency_precision

from accord.collect.channels import CHANNELS, normalise_channel
from accord.collect.emit import emit
from accord.collect.journal import Journal
from accord.offers import tables as t
from accord.profiles.anchor import identity_fields
from accord.storage import new_id, utcnow
from accord.storage.group_commit import GroupCommitter, begin_write, stage

SOURCE = "accord-offers"
SegmentCheck = Callable[[str, str], bool]
"""in_segment(profile_id, segment_name) -> bool: segment membership, supplied by whoever knows it."""

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: codes are read out at tills and on phones


class OfferError(Exception):
    """A user-caused offers error with an HTTP status and a stable code."""

    def __init__(self, status: int, code: str, message: str, detail: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail


@dataclass(frozen=True)
class OfferSpec:
    """What a new offer is."""

    name: str
    code_policy: str = "shared"  # shared | unique
    code: str | None = None  # the shared code (generated when omitted)
    discount_kind: str = "percent"  # percent (value in basis points) | amount (value in minor units)
    discount_value: int = 1000
    currency: str | None = None
    description: str = ""
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    channels: Sequence[str] | None = None
    stores: Sequence[str] | None = None
    segments: Sequence[str] | None = None
    min_basket_minor: int | None = None
    per_customer_limit: int | None = None


@dataclass(frozen=True)
class CouponRequest:
    """A code presented at a till, on the web, in the app or to the call centre."""

    code: str
    channel: str
    store_id: str | None = None
    profile_id: str | None = None
    basket_minor: int | None = None
    currency: str | None = None
    order_id: str | None = None


@dataclass
class Verdict:
    """Whether a code can be used here and now, and why (reasons it passed, problems if not)."""

    valid: bool
    code: str
    offer_id: str | None = None
    offer_name: str | None = None
    discount_minor: int | None = None
    currency: str | None = None
    reasons: list[str] = field(default_factory=list)
    problems: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


CONFLICTS = {"already_redeemed", "limit_reached"}

# The hot path's statements, built once (constructing Core statements per call costs more than running them).
_cc, _u, _r = t.coupon_codes.c, t.offer_usage.c, t.redemptions.c
SELECT_CODE = sa.select(t.coupon_codes).where(_cc.code == sa.bindparam("code"))
SELECT_OFFER = sa.select(t.offers).where(t.offers.c.id == sa.bindparam("offer_id"))
SELECT_USES = sa.select(_u.uses).where(_u.offer_id == sa.bindparam("offer_id"), _u.profile_id == sa.bindparam("pid"))
SELECT_REDEMPTION = sa.select(t.redemptions).where(_r.idempotency_key == sa.bindparam("key"))
CLAIM_CODE = (
    t.coupon_codes.update()
    .where(_cc.code == sa.bindparam("the_code"), _cc.redeemed_at.is_(None))
    .values(redeemed_at=sa.bindparam("now", type_=t.coupon_codes.c.redeemed_at.type), redemption_id=sa.bindparam("rid"))
)
COUNT_USE = (
    t.offer_usage.update()
    .where(_u.offer_id == sa.bindparam("oid"), _u.profile_id == sa.bindparam("pid"))
    .where(_u.uses < sa.bindparam("limit"))
    .values(uses=_u.uses + 1)
)
INSERT_REDEMPTION = t.redemptions.insert()

OFFER_TTL = 1.0
_offers_cache: dict[tuple[int, str], tuple[float, Any]] = {}


def _offer_row(conn: sa.Connection, offer_id: str) -> Any:
    """The offer's row, cached for OFFER_TTL seconds: a change (pause, end) reaches every process within a second;
    the single-use and per-customer guards never rely on it (they are conditional updates)."""
    key = (id(conn.engine), offer_id)
    hit = _offers_cache.get(key)
    now = time.monotonic()
    if hit is not None and now - hit[0] < OFFER_TTL:
        return hit[1]
    row = conn.execute(SELECT_OFFER, {"offer_id": offer_id}).one()
    if len(_offers_cache) > 10_000:
        _offers_cache.clear()
    _offers_cache[key] = (now, row)
    return row


def _json_list(values: Sequence[str] | None) -> str | None:
    return None if values is None else json.dumps(list(values))


def _list(text: str | None) -> list[str] | None:
    return None if text is None else list(json.loads(text))


def _channel(value: str) -> str:
    channel = normalise_channel(value)
    if channel is None:
        raise OfferError(400, "invalid_channel", f"unknown channel {value!r}; one of {', '.join(CHANNELS)}")
    return channel


def _new_code(length: int = 10) -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(length))


def normalise_code(code: str) -> str:
    """Codes are compared case-insensitively, without surrounding spaces."""
    return code.strip().upper()


def offer_view(row: Any) -> dict[str, Any]:
    """An offer row as a dict."""
    return {
        "id": row.id,
        "name": row.name,
        "description": row.description,
        "code_policy": row.code_policy,
        "discount_kind": row.discount_kind,
        "discount_value": row.discount_value,
        "currency": row.currency,
        "starts_at": row.starts_at,
        "ends_at": row.ends_at,
        "channels": _list(row.channels),
        "stores": _list(row.stores),
        "segments": _list(row.segments),
        "min_basket_minor": row.min_basket_minor,
        "per_customer_limit": row.per_customer_limit,
        "status": row.status,
        "created_at": row.created_at,
    }


def create_offer(state: sa.Engine, spec: OfferSpec) -> dict[str, Any]:
    """Create an offer (and its shared code); returns the offer with `code` for a shared offer."""
    if not spec.name.strip():
        raise OfferError(400, "invalid_offer", "an offer needs a name")
    if spec.code_policy not in ("shared", "unique"):
        raise OfferError(400, "invalid_offer", "code_policy must be 'shared' or 'unique'")
    if spec.discount_kind not in ("percent", "amount"):
        raise OfferError(400, "invalid_offer", "discount_kind must be 'percent' (basis points) or 'amount' (minor)")
    if spec.discount_value < 0 or (spec.discount_kind == "percent" and spec.discount_value > 10_000):
        raise OfferError(400, "invalid_offer", "discount_value out of range (percent: 0..10000 basis points)")
    currency = spec.currency.upper() if spec.currency else None
    if currency:
        try:
            get_currency_precision(currency)
        except Exception as exc:
            raise OfferError(400, "invalid_currency", f"{spec.currency!r} is not an ISO 4217 currency") from exc
    if spec.discount_kind == "amount" and not currency:
        raise OfferError(400, "invalid_offer", "an amount discount needs a currency")
    for when in (spec.starts_at, spec.ends_at):
        if when is not None and when.tzinfo is None:
            raise OfferError(400, "invalid_offer", "starts_at/ends_at need a time zone")
    if spec.starts_at and spec.ends_at and spec.ends_at <= spec.starts_at:
        raise OfferError(400, "invalid_offer", "ends_at must be after starts_at")
    if spec.per_customer_limit is not None and spec.per_customer_limit < 1:
        raise OfferError(400, "invalid_offer", "per_customer_limit must be at least 1")
    channels = [_channel(c) for c in spec.channels] if spec.channels is not None else None
    offer_id = new_id()
    now = utcnow()
    code = normalise_code(spec.code) if spec.code else (_new_code() if spec.code_policy == "shared" else None)
    if spec.code and spec.code_policy == "unique":
        raise OfferError(400, "invalid_offer", "a unique-code offer gets its codes from generate_codes")
    with begin_write(state) as conn:
        conn.execute(
            t.offers.insert().values(
                id=offer_id,
                name=spec.name.strip(),
                description=spec.description,
                code_policy=spec.code_policy,
                discount_kind=spec.discount_kind,
                discount_value=spec.discount_value,
                currency=currency,
                starts_at=spec.starts_at,
                ends_at=spec.ends_at,
                channels=_json_list(channels),
                stores=_json_list(spec.stores),
                segments=_json_list(spec.segments),
                min_basket_minor=spec.min_basket_minor,
                per_customer_limit=spec.per_customer_limit,
                status="active",
                created_at=now,
            )
        )
        if code:
            if conn.execute(sa.select(t.coupon_codes.c.code).where(t.coupon_codes.c.code == code)).first():
                raise OfferError(409, "code_taken", f"code {code} already belongs to another offer")
            conn.execute(t.coupon_codes.insert().values(code=code, offer_id=offer_id, single_use=False, created_at=now))
        row = conn.execute(sa.select(t.offers).where(t.offers.c.id == offer_id)).one()
    return {**offer_view(row), "code": code}


def get_offer(state: sa.Engine, offer_id: str) -> dict[str, Any]:
    """One offer with its code counts."""
    with state.connect() as conn:
        row = conn.execute(sa.select(t.offers).where(t.offers.c.id == offer_id)).first()
        if row is None:
            raise OfferError(404, "unknown_offer", f"no offer {offer_id}")
        c = t.coupon_codes.c
        total, used = conn.execute(
            sa.select(sa.func.count(), sa.func.count(c.redeemed_at)).where(c.offer_id == offer_id)
        ).one()
        shared = conn.execute(sa.select(c.code).where(c.offer_id == offer_id, c.single_use.is_(False))).scalar()
        redeemed = conn.execute(
            sa.select(sa.func.count()).select_from(t.redemptions).where(t.redemptions.c.offer_id == offer_id)
        ).scalar_one()
    return {
        **offer_view(row),
        "code": shared,
        "codes": int(total),
        "codes_redeemed": int(used),
        "redemptions": redeemed,
    }


def list_offers(state: sa.Engine, status: str | None = None) -> list[dict[str, Any]]:
    """Offers, newest first."""
    query = sa.select(t.offers).order_by(t.offers.c.id.desc())
    if status:
        query = query.where(t.offers.c.status == status)
    with state.connect() as conn:
        return [offer_view(r) for r in conn.execute(query)]


def set_status(state: sa.Engine, offer_id: str, status: str) -> dict[str, Any]:
    """Pause, resume (active) or end an offer."""
    if status not in ("active", "paused", "ended"):
        raise OfferError(400, "invalid_status", "status must be active, paused or ended")
    with begin_write(state) as conn:
        if conn.execute(t.offers.update().where(t.offers.c.id == offer_id).values(status=status)).rowcount == 0:
            raise OfferError(404, "unknown_offer", f"no offer {offer_id}")
    _offers_cache.pop((id(state), offer_id), None)
    return get_offer(state, offer_id)


def generate_codes(state: sa.Engine, offer_id: str, count: int, length: int = 10) -> list[str]:
    """COUNT new unique single-use codes for a unique-code offer (bulk, in one transaction)."""
    if not 1 <= count <= 1_000_000:
        raise OfferError(400, "invalid_count", "count must be between 1 and 1,000,000")
    if not 6 <= length <= 32:
        raise OfferError(400, "invalid_length", "length must be between 6 and 32")
    now = utcnow()
    with begin_write(state) as conn:
        policy = conn.execute(sa.select(t.offers.c.code_policy).where(t.offers.c.id == offer_id)).scalar()
        if policy is None:
            raise OfferError(404, "unknown_offer", f"no offer {offer_id}")
        if policy != "unique":
            raise OfferError(409, "shared_code_offer", "this offer has one shared code; it takes no generated codes")
        codes: list[str] = []
        while len(codes) < count:
            wanted = {_new_code(length) for _ in range(count - len(codes))}
            existing = set()
            for chunk in _chunks(sorted(wanted), 500):
                existing |= set(
                    conn.execute(sa.select(t.coupon_codes.c.code).where(t.coupon_codes.c.code.in_(chunk))).scalars()
                )
            fresh = sorted(wanted - existing)
            for chunk in _chunks(fresh, 5000):
                conn.execute(
                    t.coupon_codes.insert(),
                    [{"code": c, "offer_id": offer_id, "single_use": True, "created_at": now} for c in chunk],
                )
            codes.extend(fresh)
    return codes


def _chunks(items: Sequence[str], size: int) -> list[Sequence[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def assign(
    state: sa.Engine,
    journal: Journal,
    offer_id: str,
    profile_id: str,
    code: str | None = None,
    message_id: str | None = None,
    delivery_channel: str | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    """Give an offer to a profile: for a unique-code offer, bind CODE (or a free code) to the profile. MESSAGE_ID is
    the message/delivery that delivered it (so the associate sees how and when it was sent). Emits `Offer Assigned`.
    Assigning the same offer and code again returns the existing assignment."""
    who = identity_fields(state, profile_id)
    if who is None:
        raise OfferError(404, "unknown_profile", f"no profile {profile_id} (or it holds no identifier)")
    channel = _channel(delivery_channel) if delivery_channel else None
    now = utcnow()
    with begin_write(state) as conn:
        offer = conn.execute(sa.select(t.offers).where(t.offers.c.id == offer_id)).first()
        if offer is None:
            raise OfferError(404, "unknown_offer", f"no offer {offer_id}")
        cc = t.coupon_codes.c
        if code is not None:
            code = normalise_code(code)
            row = conn.execute(sa.select(t.coupon_codes).where(cc.code == code)).first()
            if row is None or row.offer_id != offer_id:
                raise OfferError(404, "unknown_code", f"offer {offer_id} has no code {code}")
            if row.single_use and row.profile_id not in (None, profile_id):
                raise OfferError(409, "code_assigned", f"code {code} is already assigned to another customer")
        elif offer.code_policy == "unique":
            code = conn.execute(
                sa.select(cc.code)
                .where(cc.offer_id == offer_id, cc.profile_id.is_(None), cc.redeemed_at.is_(None))
                .order_by(cc.code)
                .limit(1)
            ).scalar()
            if code is None:
                raise OfferError(409, "no_free_codes", "every code of this offer is assigned; generate more")
        else:
            code = conn.execute(sa.select(cc.code).where(cc.offer_id == offer_id, cc.single_use.is_(False))).scalar()
        a = t.offer_assignments.c
        existing = conn.execute(
            sa.select(t.offer_assignments).where(a.offer_id == offer_id, a.profile_id == profile_id, a.code == code)
        ).first()
        if existing is not None:
            return _assignment_view(existing, offer)
        if offer.code_policy == "unique":
            taken = conn.execute(
                t.coupon_codes.update()
                .where(cc.code == code, sa.or_(cc.profile_id.is_(None), cc.profile_id == profile_id))
                .values(profile_id=profile_id)
            ).rowcount
            if taken == 0:
                raise OfferError(409, "code_assigned", f"code {code} was just assigned to another customer")
        assignment_id = new_id()
        conn.execute(
            t.offer_assignments.insert().values(
                id=assignment_id,
                offer_id=offer_id,
                profile_id=profile_id,
                code=code,
                message_id=message_id,
                delivery_channel=channel,
                note=note,
                assigned_at=now,
            )
        )
        emit(
            conn,
            journal,
            SOURCE,
            "other",
            [
                {
                    **who,
                    "event": "Offer Assigned",
                    "timestamp": now.isoformat(),
                    "context": {**who.get("context", {}), "channel": channel or "other"},
                    "properties": {
                        "offer_id": offer_id,
                        "offer_name": offer.name,
                        "coupon": code,
                        "assignment_id": assignment_id,
                        "message_id": message_id,
                    },
                }
            ],
        )
        row = conn.execute(sa.select(t.offer_assignments).where(a.id == assignment_id)).one()
        return _assignment_view(row, offer)


def _assignment_view(row: Any, offer: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "offer_id": row.offer_id,
        "offer_name": offer.name,
        "profile_id": row.profile_id,
        "code": row.code,
        "message_id": row.message_id,
        "delivery_channel": row.delivery_channel,
        "note": row.note,
        "assigned_at": row.assigned_at,
    }


def _discount(offer: Any, basket_minor: int | None) -> int | None:
    if offer.discount_kind == "amount":
        return int(offer.discount_value) if basket_minor is None else min(int(offer.discount_value), basket_minor)
    if basket_minor is None:
        return None
    return int(basket_minor) * int(offer.discount_value) // 10_000


def _check(
    conn: sa.Connection,
    request: CouponRequest,
    at: datetime,
    in_segment: SegmentCheck | None,
) -> tuple[Verdict, Any, Any]:
    """Evaluate every rule; returns the verdict and the offer and code rows (None when the code is unknown)."""
    code = normalise_code(request.code)
    verdict = Verdict(valid=False, code=code)
    row = conn.execute(SELECT_CODE, {"code": code}).first()
    if row is None:
        verdict.problems.append({"code": "unknown_code", "message": f"no offer has the code {code}"})
        return verdict, None, None
    offer = _offer_row(conn, row.offer_id)
    verdict.offer_id, verdict.offer_name = offer.id, offer.name
    verdict.currency = offer.currency or request.currency
    problems, reasons = verdict.problems, verdict.reasons

    def fail(code_: str, message: str) -> None:
        problems.append({"code": code_, "message": message})

    if row.single_use:
        reasons.append(f"single-use code of offer '{offer.name}'")
    else:
        reasons.append(f"shared code of offer '{offer.name}'")
    if offer.status != "active":
        fail("offer_inactive", f"the offer is {offer.status}")
    if offer.starts_at and at < offer.starts_at:
        fail("not_started", f"the offer starts {offer.starts_at.isoformat()}")
    elif offer.ends_at and at >= offer.ends_at:
        fail("expired", f"the offer ended {offer.ends_at.isoformat()}")
    else:
        reasons.append(f"valid until {offer.ends_at.isoformat()}" if offer.ends_at else "no end date")
    channels = _list(offer.channels)
    if channels is not None:
        if request.channel not in channels:
            fail("channel_not_allowed", f"not valid on channel {request.channel} (only {', '.join(channels)})")
        else:
            reasons.append(f"valid on channel {request.channel}")
    stores = _list(offer.stores)
    if stores is not None:
        if request.store_id is None or request.store_id not in stores:
            where = f"store {request.store_id}" if request.store_id else "without a store"
            fail("store_not_allowed", f"not valid {where} (only stores {', '.join(stores)})")
        else:
            reasons.append(f"valid at store {request.store_id}")
    segments = _list(offer.segments)
    if segments:
        if request.profile_id is None:
            fail("customer_required", f"the offer is for segment(s) {', '.join(segments)}: identify the customer")
        elif in_segment is None:
            fail("segments_unavailable", "segment membership cannot be checked on this server")
        else:
            member = [s for s in segments if in_segment(request.profile_id, s)]
            if member:
                reasons.append(f"customer is in segment {member[0]}")
            else:
                fail("not_in_segment", f"the customer is in none of the segments {', '.join(segments)}")
    if row.profile_id is not None:
        if request.profile_id is not None and request.profile_id != row.profile_id:
            fail("assigned_to_other", "this code was given to another customer")
        else:
            reasons.append("code was given to this customer")
    if row.redeemed_at is not None:
        fail("already_redeemed", f"the code was used {row.redeemed_at.isoformat()}")
    if offer.min_basket_minor is not None:
        if request.basket_minor is None:
            fail("basket_required", f"the offer needs a basket of at least {offer.min_basket_minor} (minor units)")
        elif offer.currency and request.currency and request.currency.upper() != offer.currency:
            fail("currency_mismatch", f"the offer is in {offer.currency}, the basket in {request.currency.upper()}")
        elif request.basket_minor < offer.min_basket_minor:
            fail("basket_too_small", f"basket {request.basket_minor} is below the minimum {offer.min_basket_minor}")
        else:
            reasons.append(f"basket meets the minimum {offer.min_basket_minor}")
    if offer.per_customer_limit is not None:
        if request.profile_id is None:
            fail("customer_required", f"the offer is limited to {offer.per_customer_limit} use(s) per customer")
        else:
            uses = conn.execute(SELECT_USES, {"offer_id": offer.id, "pid": request.profile_id}).scalar()
            if (uses or 0) >= offer.per_customer_limit:
                fail("limit_reached", f"the customer has used this offer {uses} time(s), the limit")
            else:
                left = offer.per_customer_limit - (uses or 0)
                reasons.append(f"{left} of {offer.per_customer_limit} use(s) left for this customer")
    verdict.valid = not problems
    verdict.discount_minor = _discount(offer, request.basket_minor)
    return verdict, offer, row


class OfferService:
    """Validate and redeem coupons (hot paths through the group committer); segment checks supplied from outside."""

    def __init__(
        self, state: sa.Engine, journal: Journal, committer: GroupCommitter, in_segment: SegmentCheck | None = None
    ) -> None:
        self.state = state
        self.journal = journal
        self.committer = committer
        self.in_segment = in_segment

    def _request(self, request: CouponRequest) -> CouponRequest:
        if not request.code.strip():
            raise OfferError(400, "invalid_code", "code must not be empty")
        if request.basket_minor is not None and request.basket_minor < 0:
            raise OfferError(400, "invalid_basket", "basket_minor must not be negative")
        return CouponRequest(
            code=request.code,
            channel=_channel(request.channel),
            store_id=request.store_id,
            profile_id=request.profile_id,
            basket_minor=request.basket_minor,
            currency=request.currency.upper() if request.currency else None,
            order_id=request.order_id,
        )

    def validate(self, request: CouponRequest, at: datetime | None = None) -> Verdict:
        """Can this code be used here and now by this customer? Says why, or why not. Changes nothing."""
        request = self._request(request)
        with self.state.connect() as conn:
            verdict, _, _ = _check(conn, request, at or utcnow(), self.in_segment)
        return verdict

    def redeem(self, request: CouponRequest, idempotency_key: str) -> dict[str, Any]:
        """Use a code once, atomically. The same IDEMPOTENCY_KEY always gets the same redemption back; a used
        single-use code or a reached per-customer limit raises a 409 OfferError; other problems a 422."""
        return self.committer.submit(self.redeem_op(request, idempotency_key)).result()

    def redeem_op(self, request: CouponRequest, idempotency_key: str) -> Callable[[sa.Connection], dict[str, Any]]:
        """The redemption as an operation for the group committer (validated up front, outside the lock)."""
        key = idempotency_key.strip()
        if not key or len(key) > 200:
            raise OfferError(400, "invalid_idempotency_key", "an idempotency key of 1..200 characters is required")
        request = self._request(request)
        who = identity_fields(self.state, request.profile_id) if request.profile_id else None
        if request.profile_id and who is None:
            raise OfferError(404, "unknown_profile", f"no profile {request.profile_id} (or it holds no identifier)")

        def run(conn: sa.Connection) -> dict[str, Any]:
            return self._redeem(conn, request, key, who)

        return run

    def _redeem(
        self, conn: sa.Connection, request: CouponRequest, key: str, who: dict[str, Any] | None
    ) -> dict[str, Any]:
        previous = conn.execute(SELECT_REDEMPTION, {"key": key}).first()
        if previous is not None:
            if previous.code != normalise_code(request.code):
                raise OfferError(409, "idempotency_key_reused", "this idempotency key was used for another code")
            return {**_redemption_view(previous), "replayed": True}
        now = utcnow()
        verdict, offer, code_row = _check(conn, request, now, self.in_segment)
        if not verdict.valid:
            first = verdict.problems[0]
            status = 409 if any(p["code"] in CONFLICTS for p in verdict.problems) else 422
            if first["code"] == "unknown_code":
                status = 404
            raise OfferError(status, first["code"], first["message"], detail=verdict.as_dict())
        redemption_id = new_id()
        if code_row.single_use:  # the guard that makes a code usable once, even from two tills at once
            won = conn.execute(CLAIM_CODE, {"the_code": code_row.code, "now": now, "rid": redemption_id}).rowcount
            if won == 0:
                raise OfferError(409, "already_redeemed", "the code was used a moment ago")
        if offer.per_customer_limit is not None and request.profile_id is not None:
            _insert_ignore(conn, t.offer_usage, {"offer_id": offer.id, "profile_id": request.profile_id, "uses": 0})
            usage = {"oid": offer.id, "pid": request.profile_id, "limit": offer.per_customer_limit}
            won = conn.execute(COUNT_USE, usage).rowcount
            if won == 0:
                raise OfferError(409, "limit_reached", "the customer reached this offer's limit a moment ago")
        values = {
            "id": redemption_id,
            "idempotency_key": key,
            "offer_id": offer.id,
            "code": code_row.code,
            "profile_id": request.profile_id,
            "channel": request.channel,
            "store_id": request.store_id,
            "order_id": request.order_id,
            "basket_minor": request.basket_minor,
            "currency": verdict.currency,
            "discount_minor": verdict.discount_minor,
            "redeemed_at": now,
        }
        conn.execute(INSERT_REDEMPTION, values)
        if who is None and code_row.profile_id is not None:  # a code given to a customer, presented anonymously
            who = identity_fields(self.state, code_row.profile_id)
        identity = who or {"anonymousId": f"redemption:{redemption_id}"}
        properties: dict[str, Any] = {
            "coupon": code_row.code,
            "offer_id": offer.id,
            "offer_name": offer.name,
            "redemption_id": redemption_id,
            "store_id": request.store_id,
            "order_id": request.order_id,
            "channel": request.channel,
        }
        if verdict.discount_minor is not None and verdict.currency:
            properties["discount"] = verdict.discount_minor / 10 ** get_currency_precision(verdict.currency)
            properties["currency"] = verdict.currency
        message = {
            **identity,
            "event": "Coupon Redeemed",
            "timestamp": now.isoformat(),
            "context": {**identity.get("context", {}), "channel": request.channel},
            "properties": properties,
        }
        stage(conn, (SOURCE, message))  # emitted with the group, in the same transaction
        return {**_redemption_view(values), "offer_name": offer.name, "reasons": verdict.reasons, "replayed": False}

    def active_offers(
        self, profile_id: str, store_id: str | None, channel: str, at: datetime | None = None
    ) -> list[dict[str, Any]]:
        """See `active_offers`; with this service's segment check."""
        return active_offers(self.state, profile_id, store_id, channel, at, self.in_segment)


def _redemption_view(row: Any) -> dict[str, Any]:
    get = row.get if isinstance(row, dict) else lambda k: getattr(row, k)
    return {
        k: get(k)
        for k in (
            "id",
            "idempotency_key",
            "offer_id",
            "code",
            "profile_id",
            "channel",
            "store_id",
            "order_id",
            "basket_minor",
            "currency",
            "discount_minor",
            "redeemed_at",
        )
    }


_INSERT_IGNORE: dict[tuple[str, str], sa.Executable] = {}


def _insert_ignore(conn: sa.Connection, table: sa.Table, values: dict[str, Any]) -> None:
    """INSERT ... ON CONFLICT DO NOTHING (statement built once per table and dialect)."""
    key = (table.name, conn.dialect.name)
    stmt = _INSERT_IGNORE.get(key)
    if stmt is None:
        if conn.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            stmt = pg_insert(table).on_conflict_do_nothing()
        else:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            stmt = sqlite_insert(table).on_conflict_do_nothing()
        _INSERT_IGNORE[key] = stmt
    conn.execute(stmt, values)


def active_offers(
    state: sa.Engine,
    profile_id: str,
    store_id: str | None,
    channel: str,
    at: datetime | None = None,
    in_segment: SegmentCheck | None = None,
) -> list[dict[str, Any]]:
    """Offers the customer holds and can use here (STORE_ID, CHANNEL) and now (AT), each with why it is usable and
    the message that delivered it — the store-associate screen. Basket rules are shown, not checked (no basket yet)."""
    at = at or utcnow()
    channel = _channel(channel)
    a = t.offer_assignments.c
    out: list[dict[str, Any]] = []
    with state.connect() as conn:
        rows = conn.execute(
            sa.select(t.offer_assignments).where(a.profile_id == profile_id).order_by(a.assigned_at.desc())
        ).all()
        seen: set[str] = set()
        for row in rows:
            if row.code is None or row.code in seen:
                continue
            seen.add(row.code)
            request = CouponRequest(code=row.code, channel=channel, store_id=store_id, profile_id=profile_id)
            verdict, offer, _ = _check(conn, request, at, in_segment)
            blocking = [p for p in verdict.problems if p["code"] != "basket_required"]
            if blocking or offer is None:
                continue
            reasons = list(verdict.reasons)
            sent = f"sent by {row.delivery_channel or 'an unknown channel'} on {row.assigned_at:%Y-%m-%d %H:%M} UTC"
            if row.note:
                sent += f" ({row.note})"
            reasons.insert(0, sent)
            if offer.min_basket_minor is not None:
                reasons.append(f"needs a basket of at least {offer.min_basket_minor} {offer.currency or ''}".strip())
            out.append(
                {
                    "offer": offer_view(offer),
                    "code": row.code,
                    "assignment_id": row.id,
                    "assigned_at": row.assigned_at,
                    "message_id": row.message_id,
                    "delivery_channel": row.delivery_channel,
                    "why": reasons,
                }
            )
    return out
