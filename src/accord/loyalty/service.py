"""Loyalty: earn, burn, expire, adjust and reverse points through one append-only ledger; balances and tiers now.

Every entry goes through `LoyaltyService`, in one transaction with the account update and the timeline event it
emits. Balances change only by conditional updates (`balance >= points` for a burn), so concurrent burns can never
take a balance below zero, and the ledger always sums to the balance.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from babel.numbers import get_currency_precision
from ulid import ULID

from accord.collect.channels import CHANNELS, normalise_channel
from accord.collect.journal import Journal
from accord.loyalty import tables as t
from accord.loyalty.program import Program, ProgramError
from accord.profiles.anchor import identity_fields, missing_profile
from accord.storage import new_id, utcnow
from accord.storage.group_commit import GroupCommitter, begin_write, stage

SOURCE = "accord-loyalty"
EVENT_NAMES = {
    "earn": "Loyalty Points Earned",
    "burn": "Loyalty Points Spent",
    "expire": "Loyalty Points Expired",
    "adjust": "Loyalty Points Adjusted",
    "reverse": "Loyalty Points Reversed",
}


# The hot path's statements, built once (constructing Core statements per call costs more than running them).
_a, _l, _lots = t.loyalty_accounts.c, t.loyalty_ledger.c, t.loyalty_lots.c
_now = sa.bindparam("now", type_=_a.updated_at.type)
SELECT_ENTRY = sa.select(t.loyalty_ledger).where(_l.idempotency_key == sa.bindparam("key"))
SELECT_TIER = sa.select(_a.tier).where(_a.profile_id == sa.bindparam("pid"))
SELECT_BALANCE = sa.select(_a.balance).where(_a.profile_id == sa.bindparam("pid"))
CREDIT = (
    t.loyalty_accounts.update()
    .where(_a.profile_id == sa.bindparam("pid"))
    .values(balance=_a.balance + sa.bindparam("pts"), lifetime_earned=_a.lifetime_earned + sa.bindparam("life"))
    .values(updated_at=_now)
    .returning(_a.balance, _a.lifetime_earned, _a.tier)
)


def _debit_statement(greatest: Any) -> Any:
    """balance -= pts only WHERE balance >= pts: the guard that keeps every balance at zero or above."""
    return (
        t.loyalty_accounts.update()
        .where(_a.profile_id == sa.bindparam("pid"), _a.balance >= sa.bindparam("pts"))
        .values(balance=_a.balance - sa.bindparam("pts"))
        .values(lifetime_earned=greatest(_a.lifetime_earned - sa.bindparam("life"), 0), updated_at=_now)
        .returning(_a.balance, _a.lifetime_earned, _a.tier)
    )


DEBIT = {"sqlite": _debit_statement(sa.func.max), "postgresql": _debit_statement(sa.func.greatest)}
SET_TIER = t.loyalty_accounts.update().where(_a.profile_id == sa.bindparam("pid")).values(tier=sa.bindparam("new_tier"))
INSERT_ENTRY = t.loyalty_ledger.insert()
INSERT_LOT = t.loyalty_lots.insert()
# A burn takes the soonest-expiring points first, then the points that never expire; each read walks the partial
# index `loyalty_lots_open` (profile, expiry, entry; open lots only), so its cost does not grow with the number of
# lots a frequent customer holds.
_OPEN_LOTS = sa.select(_lots.entry_id, _lots.remaining).where(
    _lots.profile_id == sa.bindparam("pid"),
    _lots.remaining > sa.literal_column("0"),  # a literal, so the planner can use the partial index
)
SELECT_LOTS = (
    _OPEN_LOTS.where(_lots.expires_at.is_not(None)).order_by(_lots.expires_at, _lots.entry_id).limit(20),
    _OPEN_LOTS.where(_lots.expires_at.is_(None)).order_by(_lots.entry_id).limit(20),
)
# a profile's lots due by a time, in the order they expire (the history backfill expires them as it goes)
SELECT_DUE_LOTS = (
    _OPEN_LOTS.with_only_columns(_lots.entry_id, _lots.expires_at)
    .where(_lots.expires_at.is_not(None), _lots.expires_at <= sa.bindparam("upto", type_=_lots.expires_at.type))
    .order_by(_lots.expires_at, _lots.entry_id)
)
SELECT_LOT = sa.select(_lots.remaining).where(_lots.entry_id == sa.bindparam("entry_id"))
TAKE_FROM_LOT = (
    t.loyalty_lots.update()
    .where(_lots.entry_id == sa.bindparam("lot"))
    .values(remaining=_lots.remaining - sa.bindparam("take"))
)


class LoyaltyError(Exception):
    """A user-caused loyalty error with an HTTP status and a stable code."""

    def __init__(self, status: int, code: str, message: str, detail: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail


@dataclass(frozen=True)
class EarnRequest:
    """Points to earn: either POINTS directly, or a purchase (LINES of (amount_minor, category), or AMOUNT_MINOR)."""

    idempotency_key: str
    channel: str
    points: int | None = None
    amount_minor: int | None = None
    currency: str | None = None
    lines: Sequence[tuple[int, str | None]] | None = None
    order_id: str | None = None
    store_id: str | None = None
    reason: str | None = None


def _channel(value: str | None) -> str | None:
    if value is None:
        return None
    channel = normalise_channel(value)
    if channel is None:
        raise LoyaltyError(400, "invalid_channel", f"unknown channel {value!r}; one of {', '.join(CHANNELS)}")
    return channel


def _key(key: str) -> str:
    key = (key or "").strip()
    if not key or len(key) > 200:
        raise LoyaltyError(400, "invalid_idempotency_key", "an idempotency key of 1..200 characters is required")
    return key


def _entry_view(row: Any) -> dict[str, Any]:
    get = row.get if isinstance(row, dict) else lambda k: getattr(row, k)
    detail = get("detail")
    return {
        "id": get("id"),
        "idempotency_key": get("idempotency_key"),
        "profile_id": get("profile_id"),
        "kind": get("kind"),
        "points": get("points"),
        "balance_after": get("balance_after"),
        "channel": get("channel"),
        "store_id": get("store_id"),
        "order_id": get("order_id"),
        "reason": get("reason"),
        "detail": json.loads(detail) if isinstance(detail, str) else detail,
        "expires_at": get("expires_at"),
        "created_at": get("created_at"),
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


_dated_lock = threading.Lock()
_last_dated = [0]


def dated_id(at: datetime) -> str:
    """A sortable id (ULID) carrying AT's millisecond, so an entry written now for a past time sorts among the
    entries of its time; ids made for the same millisecond one after another increase."""
    ms = int(at.timestamp() * 1000)
    value = (ms << 80) | secrets.randbits(80)
    with _dated_lock:
        if (_last_dated[0] >> 80) == ms and value <= _last_dated[0]:
            value = _last_dated[0] + 1
        _last_dated[0] = value
    return str(ULID.from_int(value))


class LoyaltyService:
    """The one write path of the loyalty domain (hot paths through the group committer)."""

    def __init__(self, state: sa.Engine, journal: Journal, committer: GroupCommitter) -> None:
        self.state = state
        self.journal = journal
        self.committer = committer
        self._program: tuple[float, Program] | None = None
        self._configured = False

    # -- the program ---------------------------------------------------------------------------------------
    def program(self) -> Program:
        """The current program (re-read at most once a second, so every process sees a change within a second)."""
        cached = self._program
        if cached is not None and time.monotonic() - cached[0] < 1.0:
            return cached[1]
        with self.state.connect() as conn:
            text = conn.execute(sa.select(t.loyalty_program.c.config).where(t.loyalty_program.c.id == 1)).scalar()
        program = Program.from_config(json.loads(text)) if text else Program()
        self._program = (time.monotonic(), program)
        self._configured = bool(text)
        return program

    def enabled(self) -> bool:
        """Whether a program has been configured (orders earn points automatically only then)."""
        self.program()
        return self._configured

    def configure(self, config: dict[str, Any]) -> Program:
        """Replace the program (earn rules, tiers, expiry); returns it validated."""
        try:
            program = Program.from_config(config)
        except ProgramError as exc:
            raise LoyaltyError(400, "invalid_program", str(exc)) from exc
        with begin_write(self.state) as conn:
            text = json.dumps(program.as_config())
            updated = conn.execute(
                t.loyalty_program.update().where(t.loyalty_program.c.id == 1).values(config=text, updated_at=utcnow())
            ).rowcount
            if not updated:
                conn.execute(t.loyalty_program.insert().values(id=1, config=text, updated_at=utcnow()))
        self._program = (time.monotonic(), program)
        self._configured = True
        return program

    # -- reads ---------------------------------------------------------------------------------------------
    def account(self, profile_id: str) -> dict[str, Any]:
        """Balance, tier, lifetime points, next tier, points expiring next, and the latest entries."""
        program = self.program()
        with self.state.connect() as conn:
            row = conn.execute(
                sa.select(t.loyalty_accounts).where(t.loyalty_accounts.c.profile_id == profile_id)
            ).first()
            if row is None and identity_fields(self.state, profile_id) is None:
                raise LoyaltyError(*missing_profile(self.state, profile_id))
            lots = t.loyalty_lots.c
            expiring = conn.execute(
                sa.select(lots.expires_at, lots.remaining)
                .where(lots.profile_id == profile_id, lots.remaining > 0, lots.expires_at.is_not(None))
                .order_by(lots.expires_at)
                .limit(1)
            ).first()
            entries = conn.execute(
                sa.select(t.loyalty_ledger)
                .where(t.loyalty_ledger.c.profile_id == profile_id)
                .order_by(t.loyalty_ledger.c.id.desc())
                .limit(10)
            ).all()
        balance = row.balance if row else 0
        lifetime = row.lifetime_earned if row else 0
        tier = row.tier if row else program.tier_for(0)
        next_tier = next(((n, th) for n, th in program.tiers if th > lifetime), None)
        return {
            "profile_id": profile_id,
            "balance": balance,
            "tier": tier,
            "lifetime_points": lifetime,
            "next_tier": {"name": next_tier[0], "points_needed": next_tier[1] - lifetime} if next_tier else None,
            "next_expiry": {"at": expiring.expires_at, "points": expiring.remaining} if expiring else None,
            "recent_entries": [_entry_view(e) for e in entries],
        }

    def ledger(self, profile_id: str, limit: int = 100, before: str | None = None) -> list[dict[str, Any]]:
        """Ledger entries of a profile, newest first."""
        query = (
            sa.select(t.loyalty_ledger)
            .where(t.loyalty_ledger.c.profile_id == profile_id)
            .order_by(t.loyalty_ledger.c.id.desc())
            .limit(limit)
        )
        if before:
            query = query.where(t.loyalty_ledger.c.id < before)
        with self.state.connect() as conn:
            return [_entry_view(r) for r in conn.execute(query)]

    def members_by_tier(self) -> dict[str, Any]:
        """Accounts, points outstanding and lifetime points per tier (the program's tiers in order, then others)."""
        a = t.loyalty_accounts.c
        query = sa.select(a.tier, sa.func.count(), sa.func.sum(a.balance), sa.func.sum(a.lifetime_earned))
        with self.state.connect() as conn:
            rows = conn.execute(query.group_by(a.tier)).all()
        found = {r[0]: (int(r[1]), int(r[2] or 0), int(r[3] or 0)) for r in rows}
        names = [n for n, _th in self.program().tiers]
        tiers = []
        for name in names + sorted(set(found) - set(names)):
            accounts, balance, lifetime = found.get(name, (0, 0, 0))
            tiers.append({"tier": name, "accounts": accounts, "balance": balance, "lifetime_points": lifetime})
        return {
            "accounts": sum(x["accounts"] for x in tiers),
            "balance": sum(x["balance"] for x in tiers),
            "tiers": tiers,
        }

    # -- writes --------------------------------------------------------------------------------------------
    def _who(self, profile_id: str) -> dict[str, Any]:
        who = identity_fields(self.state, profile_id)
        if who is None:
            raise LoyaltyError(*missing_profile(self.state, profile_id))
        return who

    def earn(self, profile_id: str, request: EarnRequest) -> dict[str, Any]:
        """Earn points (directly, or for a purchase by the program's rules)."""
        return self.committer.submit(self.earn_op(profile_id, request)).result()

    def earn_op(
        self, profile_id: str, request: EarnRequest, at: datetime | None = None
    ) -> Callable[[sa.Connection], dict[str, Any]]:
        """The earn as an operation for the group committer (validated up front). AT writes it as of that past
        time (the history backfill, `accord.loyalty.history`): the profile's lots due by then expire first, the
        entry and its event are dated AT and its lot expires counting from AT."""
        key = _key(request.idempotency_key)
        channel = _channel(request.channel)
        lines: list[tuple[int, str | None]] = []
        currency = request.currency.upper() if request.currency else None
        if request.points is not None:
            if request.points <= 0:
                raise LoyaltyError(400, "invalid_points", "points must be a positive integer")
            if request.lines or request.amount_minor is not None:
                raise LoyaltyError(400, "invalid_earn", "give either points or a purchase amount, not both")
        else:
            if request.lines:
                lines = [(int(a), c) for a, c in request.lines]
            elif request.amount_minor is not None:
                lines = [(int(request.amount_minor), None)]
            else:
                raise LoyaltyError(400, "invalid_earn", "give points, amount_minor or lines")
            if any(a < 0 for a, _ in lines):
                raise LoyaltyError(400, "invalid_amount", "amounts must not be negative")
            if not currency:
                raise LoyaltyError(400, "invalid_currency", "a purchase amount needs its ISO 4217 currency")
            try:
                get_currency_precision(currency)
            except Exception as exc:
                raise LoyaltyError(400, "invalid_currency", f"{currency!r} is not an ISO 4217 currency") from exc
        who = self._who(profile_id)
        program = self.program()

        def run(conn: sa.Connection) -> dict[str, Any]:
            if at is not None:
                self._expire_due(conn, who, profile_id, program, at)
            previous = self._previous(conn, key, profile_id, "earn")
            if previous is not None:
                return previous
            # the tier matters only when tiers earn differently (saves a read per earn otherwise)
            tier = self._tier(conn, profile_id, program) if program.tier_multipliers else None
            detail: dict[str, Any]
            if request.points is not None:
                points, detail = request.points, {"direct": True}
            else:
                assert currency is not None
                points, detail = program.points_for(lines, currency, channel, tier)
                detail["amount_minor"] = sum(a for a, _ in lines)
            result = self._credit(
                conn, who, profile_id, key, "earn", points, program, channel, request, detail, lifetime=True, at=at
            )
            if request.order_id and request.points is None:
                _insert_ignore(
                    conn,
                    t.loyalty_orders,
                    {
                        "order_id": request.order_id,
                        "profile_id": profile_id,
                        "amount_minor": sum(a for a, _ in lines),
                        "currency": currency,
                        "earned": points,
                        "reversed": 0,
                    },
                )
            return result

        return run

    def burn(
        self,
        profile_id: str,
        points: int,
        idempotency_key: str,
        channel: str,
        store_id: str | None = None,
        reason: str | None = None,
    ) -> dict[str, Any]:
        """Spend points; 409 `insufficient_points` when the balance is lower (the balance never goes below zero)."""
        return self.committer.submit(
            self.burn_op(profile_id, points, idempotency_key, channel, store_id, reason)
        ).result()

    def burn_op(
        self,
        profile_id: str,
        points: int,
        idempotency_key: str,
        channel: str,
        store_id: str | None = None,
        reason: str | None = None,
    ) -> Callable[[sa.Connection], dict[str, Any]]:
        """The burn as an operation for the group committer (validated up front)."""
        key = _key(idempotency_key)
        ch = _channel(channel)
        if points <= 0:
            raise LoyaltyError(400, "invalid_points", "points must be a positive integer")
        who = self._who(profile_id)
        program = self.program()

        def run(conn: sa.Connection) -> dict[str, Any]:
            previous = self._previous(conn, key, profile_id, "burn", -points)
            if previous is not None:
                return previous
            return self._debit(conn, who, profile_id, key, "burn", points, program, ch, store_id, reason, None)

        return run

    def adjust(self, profile_id: str, points: int, idempotency_key: str, reason: str) -> dict[str, Any]:
        """A manual correction: positive adds points (no expiry), negative removes them (never below zero)."""
        key = _key(idempotency_key)
        if points == 0:
            raise LoyaltyError(400, "invalid_points", "an adjustment must not be zero")
        if not reason.strip():
            raise LoyaltyError(400, "reason_required", "an adjustment needs a reason")
        who = self._who(profile_id)
        program = self.program()

        def run(conn: sa.Connection) -> dict[str, Any]:
            previous = self._previous(conn, key, profile_id, "adjust")
            if previous is not None:
                return previous
            if points > 0:
                request = EarnRequest(idempotency_key=key, channel="other", reason=reason)
                return self._credit(
                    conn,
                    who,
                    profile_id,
                    key,
                    "adjust",
                    points,
                    program,
                    None,
                    request,
                    {},
                    lifetime=False,
                    expiry=False,
                )
            return self._debit(conn, who, profile_id, key, "adjust", -points, program, None, None, reason, None)

        return self.committer.run(run)

    def reverse_order(
        self, order_id: str, idempotency_key: str, amount_minor: int | None = None, reason: str = "order returned"
    ) -> dict[str, Any] | None:
        """Take back the points an order earned: all of what is left of them, or the share of AMOUNT_MINOR in the
        order's amount (a partial return). Capped at the balance (never below zero); the shortfall is recorded.
        Returns None when the order earned no points."""
        return self.committer.run(self.reverse_op(order_id, idempotency_key, amount_minor, reason))

    def reverse_op(
        self,
        order_id: str,
        idempotency_key: str,
        amount_minor: int | None = None,
        reason: str = "order returned",
        at: datetime | None = None,
    ) -> Callable[[sa.Connection], dict[str, Any] | None]:
        """`reverse_order` as an operation for the group committer (the order is read in its transaction, so it
        may follow the earn in the same group). AT writes it as of that past time, as `earn_op` does."""
        key = _key(idempotency_key)
        program = self.program()

        def run(conn: sa.Connection) -> dict[str, Any] | None:
            current = conn.execute(sa.select(t.loyalty_orders).where(t.loyalty_orders.c.order_id == order_id)).first()
            if current is None:
                return None
            who = self._who(current.profile_id)
            if at is not None:
                self._expire_due(conn, who, current.profile_id, program, at)
            previous = self._previous(conn, key, current.profile_id, "reverse")
            if previous is not None:
                return previous
            left = current.earned - current.reversed
            if amount_minor is None or current.amount_minor <= 0:
                wanted = left
            else:
                wanted = min(left, current.earned * min(amount_minor, current.amount_minor) // current.amount_minor)
            if wanted <= 0:
                return None
            balance = conn.execute(SELECT_BALANCE, {"pid": current.profile_id}).scalar()
            taken = min(wanted, balance or 0)
            conn.execute(
                t.loyalty_orders.update()
                .where(t.loyalty_orders.c.order_id == order_id)
                .values(reversed=t.loyalty_orders.c.reversed + wanted)
            )
            detail = {"wanted": wanted, "shortfall": wanted - taken, "amount_minor": amount_minor}
            if taken == 0:
                detail["note"] = "the points were already spent"
            return self._debit(
                conn, who, current.profile_id, key, "reverse", taken, program, None, None, reason, order_id,
                detail=detail, lifetime=wanted, allow_zero=True, at=at,
            )  # fmt: skip

        return run

    def expire(self, at: datetime | None = None, limit: int = 10_000) -> int:
        """Expire what is left of every lot whose expiry has passed (one ledger entry per lot); returns how many."""
        at = at or utcnow()
        program = self.program()
        lots = t.loyalty_lots.c
        with self.state.connect() as conn:
            due = conn.execute(
                sa.select(lots.entry_id, lots.profile_id)
                .where(lots.remaining > 0, lots.expires_at.is_not(None), lots.expires_at <= at)
                .order_by(lots.expires_at)
                .limit(limit)
            ).all()
        done = 0
        for entry_id, profile_id in due:
            who = identity_fields(self.state, profile_id) or {"anonymousId": f"profile:{profile_id}"}

            def run(conn: sa.Connection, entry_id: str = entry_id, profile_id: str = profile_id, who: Any = who) -> int:
                return int(self._expire_lot(conn, who, profile_id, entry_id, program) > 0)

            done += self.committer.run(run)
        return done

    def expire_as_of(self, upto: datetime, batch: int = 2_000) -> tuple[int, int]:
        """Expire every lot due by UPTO, each entry dated at the lot's own expiry (as if `expire` had run at that
        moment; the history backfill's last step). Returns (lots expired, points expired)."""
        program = self.program()
        lots = t.loyalty_lots.c
        expired = points = 0
        while True:
            with self.state.connect() as conn:
                due = conn.execute(
                    sa.select(lots.profile_id)
                    .where(lots.remaining > 0, lots.expires_at.is_not(None), lots.expires_at <= upto)
                    .group_by(lots.profile_id)
                    .limit(batch)
                ).all()
            if not due:
                return expired, points
            futures = []
            for (profile_id,) in due:
                who = identity_fields(self.state, profile_id) or {"anonymousId": f"profile:{profile_id}"}

                def run(conn: sa.Connection, profile_id: str = profile_id, who: Any = who) -> tuple[int, int]:
                    return self._expire_due(conn, who, profile_id, program, upto)

                futures.append(self.committer.submit(run))
            before = expired
            for future in futures:
                lots_done, points_done = future.result()
                expired += lots_done
                points += points_done
            if expired == before:  # nothing left that can expire (never loop on a lot that will not)
                return expired, points

    def _expire_due(
        self, conn: sa.Connection, who: dict[str, Any], profile_id: str, program: Program, upto: datetime
    ) -> tuple[int, int]:
        """Expire the profile's lots due by UPTO, each dated at its expiry; returns (lots, points)."""
        lots = points = 0
        for entry_id, expires_at in conn.execute(SELECT_DUE_LOTS, {"pid": profile_id, "upto": upto}).all():
            taken = self._expire_lot(conn, who, profile_id, entry_id, program, at=expires_at)
            lots += taken > 0
            points += taken
        return lots, points

    def _expire_lot(
        self,
        conn: sa.Connection,
        who: dict[str, Any],
        profile_id: str,
        entry_id: str,
        program: Program,
        at: datetime | None = None,
    ) -> int:
        """Expire what is left of one lot (once: keyed by the lot); returns the points taken."""
        key = f"expire:{entry_id}"
        if self._previous(conn, key, profile_id, "expire") is not None:
            return 0
        remaining = conn.execute(SELECT_LOT, {"entry_id": entry_id}).scalar() or 0
        if remaining <= 0:
            return 0
        self._debit(
            conn, who, profile_id, key, "expire", remaining, program, None, None, "points expired", None,
            lots_first=[entry_id], at=at,
        )  # fmt: skip
        return int(remaining)

    # -- internals -----------------------------------------------------------------------------------------
    def _previous(
        self, conn: sa.Connection, key: str, profile_id: str, kind: str, points: int | None = None
    ) -> dict[str, Any] | None:
        """The entry already written under KEY (a retry gets it back); 409 if KEY was used for something else."""
        row = conn.execute(SELECT_ENTRY, {"key": key}).first()
        if row is None:
            return None
        if row.profile_id != profile_id or row.kind != kind or (points is not None and row.points != points):
            raise LoyaltyError(409, "idempotency_key_reused", "this idempotency key was used for another entry")
        return {**_entry_view(row), "replayed": True, "tier": self._tier(conn, profile_id, self.program())}

    def _tier(self, conn: sa.Connection, profile_id: str, program: Program) -> str:
        tier = conn.execute(SELECT_TIER, {"pid": profile_id}).scalar()
        return tier or program.tier_for(0)

    def _credit(
        self,
        conn: sa.Connection,
        who: dict[str, Any],
        profile_id: str,
        key: str,
        kind: str,
        points: int,
        program: Program,
        channel: str | None,
        request: EarnRequest,
        detail: dict[str, Any],
        lifetime: bool,
        expiry: bool = True,
        at: datetime | None = None,
    ) -> dict[str, Any]:
        now = at or utcnow()
        params = {"pid": profile_id, "pts": points, "life": points if lifetime else 0, "now": now}
        row = conn.execute(CREDIT, params).first()
        if row is None:  # the first entry of this profile opens its account
            account = {"profile_id": profile_id, "balance": 0, "lifetime_earned": 0, "tier": program.tier_for(0)}
            _insert_ignore(conn, t.loyalty_accounts, {**account, "created_at": now, "updated_at": now})
            row = conn.execute(CREDIT, params).one()
        balance, lifetime_points, old_tier = row
        expires_at = now + timedelta(days=program.expiry_days) if expiry and program.expiry_days else None
        entry = {
            "id": dated_id(at) if at is not None else new_id(),
            "idempotency_key": key,
            "profile_id": profile_id,
            "kind": kind,
            "points": points,
            "balance_after": balance,
            "channel": channel,
            "store_id": request.store_id,
            "order_id": request.order_id,
            "reason": request.reason,
            "detail": json.dumps(detail),
            "expires_at": expires_at,
            "created_at": now,
        }
        conn.execute(INSERT_ENTRY, entry)
        if points > 0:
            lot = {"entry_id": entry["id"], "profile_id": profile_id, "expires_at": expires_at, "remaining": points}
            conn.execute(INSERT_LOT, lot)
        tier = self._retier(conn, who, profile_id, program, lifetime_points, old_tier, channel, now)
        self._emit(conn, who, entry, tier, now)
        return {**_entry_view(entry), "tier": tier, "replayed": False}

    def _debit(
        self,
        conn: sa.Connection,
        who: dict[str, Any],
        profile_id: str,
        key: str,
        kind: str,
        points: int,
        program: Program,
        channel: str | None,
        store_id: str | None,
        reason: str | None,
        order_id: str | None,
        detail: dict[str, Any] | None = None,
        lifetime: int = 0,
        allow_zero: bool = False,
        lots_first: Sequence[str] = (),
        at: datetime | None = None,
    ) -> dict[str, Any]:
        now = at or utcnow()
        # The guard: a debit happens only when the balance covers it, decided by the database row, not by a read.
        params = {"pid": profile_id, "pts": points, "life": lifetime, "now": now}
        row = conn.execute(DEBIT[conn.dialect.name], params).first()
        after: tuple[int, int, str]
        if row is not None:
            after = (row[0], row[1], row[2])
        else:
            if allow_zero and points == 0:
                after = (0, 0, program.tier_for(0))
            else:
                balance = conn.execute(SELECT_BALANCE, {"pid": profile_id}).scalar() or 0
                raise LoyaltyError(
                    409,
                    "insufficient_points",
                    f"the balance is {balance} points, {points} requested",
                    detail={"balance": balance, "requested": points},
                )
        balance, lifetime_points, old_tier = after
        self._consume_lots(conn, profile_id, points, lots_first)
        entry = {
            "id": dated_id(at) if at is not None else new_id(),
            "idempotency_key": key,
            "profile_id": profile_id,
            "kind": kind,
            "points": -points,
            "balance_after": balance,
            "channel": channel,
            "store_id": store_id,
            "order_id": order_id,
            "reason": reason,
            "detail": json.dumps(detail) if detail else None,
            "expires_at": None,
            "created_at": now,
        }
        conn.execute(INSERT_ENTRY, entry)
        tier = self._retier(conn, who, profile_id, program, lifetime_points, old_tier, channel, now)
        self._emit(conn, who, entry, tier, now)
        return {**_entry_view(entry), "tier": tier, "replayed": False}

    def _consume_lots(self, conn: sa.Connection, profile_id: str, points: int, first: Sequence[str]) -> None:
        """Take POINTS from the profile's lots: the named ones first, then the soonest to expire."""
        left = points
        for entry_id in first:
            remaining = conn.execute(SELECT_LOT, {"entry_id": entry_id}).scalar() or 0
            take = min(left, remaining)
            if take > 0:
                conn.execute(TAKE_FROM_LOT, {"lot": entry_id, "take": take})
                left -= take
        for statement in SELECT_LOTS:
            while left > 0:
                rows = conn.execute(statement, {"pid": profile_id}).all()
                if not rows:
                    break
                for entry_id, remaining in rows:
                    take = min(left, remaining)
                    conn.execute(TAKE_FROM_LOT, {"lot": entry_id, "take": take})
                    left -= take
                    if left <= 0:
                        break

    def _retier(
        self,
        conn: sa.Connection,
        who: dict[str, Any],
        profile_id: str,
        program: Program,
        lifetime_points: int,
        old_tier: str,
        channel: str | None,
        now: datetime,
    ) -> str:
        tier = program.tier_for(lifetime_points)
        if tier != old_tier:
            conn.execute(SET_TIER, {"pid": profile_id, "new_tier": tier})
            self._send(conn, who, "Loyalty Tier Changed", {"from_tier": old_tier, "tier": tier}, channel, now)
        return tier

    def _emit(self, conn: sa.Connection, who: dict[str, Any], entry: dict[str, Any], tier: str, now: datetime) -> None:
        properties = {
            "entry_id": entry["id"],
            "kind": entry["kind"],
            "points": entry["points"],
            "balance": entry["balance_after"],
            "tier": tier,
            "order_id": entry["order_id"],
            "store_id": entry["store_id"],
            "reason": entry["reason"],
        }
        self._send(conn, who, EVENT_NAMES[entry["kind"]], properties, entry["channel"], now)

    def _send(
        self,
        conn: sa.Connection,
        who: dict[str, Any],
        event: str,
        properties: dict[str, Any],
        channel: str | None,
        now: datetime,
    ) -> None:
        message = {
            **who,
            "event": event,
            "timestamp": now.isoformat(),
            "context": {**who.get("context", {}), "channel": channel or "other"},
            "properties": {k: v for k, v in properties.items() if v is not None},
        }
        stage(conn, (SOURCE, message))  # emitted with the group, in the same transaction

    # -- rewards -------------------------------------------------------------------------------------------
    def add_reward(self, name: str, cost_points: int, stock: int | None = None) -> dict[str, Any]:
        """A reward in the catalogue."""
        if not name.strip() or cost_points <= 0 or (stock is not None and stock < 0):
            raise LoyaltyError(400, "invalid_reward", "a reward needs a name, a positive cost and a stock >= 0")
        row = {
            "id": new_id(),
            "name": name.strip(),
            "cost_points": cost_points,
            "stock": stock,
            "active": True,
            "created_at": utcnow(),
        }
        with begin_write(self.state) as conn:
            conn.execute(t.loyalty_rewards.insert().values(**row))
        return row

    def rewards(self) -> list[dict[str, Any]]:
        """The active catalogue."""
        with self.state.connect() as conn:
            rows = conn.execute(
                sa.select(t.loyalty_rewards)
                .where(t.loyalty_rewards.c.active.is_(True))
                .order_by(t.loyalty_rewards.c.id)
            )
            return [dict(r._mapping) for r in rows]

    def claim_reward(
        self, profile_id: str, reward_id: str, idempotency_key: str, channel: str, store_id: str | None = None
    ) -> dict[str, Any]:
        """Spend points on a reward: a voucher (claim) usable once. Same key -> same claim."""
        key = _key(idempotency_key)
        ch = _channel(channel)
        who = self._who(profile_id)
        program = self.program()

        def run(conn: sa.Connection) -> dict[str, Any]:
            c = t.loyalty_reward_claims.c
            previous = self._previous(conn, key, profile_id, "burn")
            if previous is not None:
                old = conn.execute(sa.select(t.loyalty_reward_claims).where(c.entry_id == previous["id"])).first()
                if old is None:
                    raise LoyaltyError(409, "idempotency_key_reused", "this idempotency key was used for a burn")
                return {**dict(old._mapping), "entry": previous, "replayed": True}
            r = t.loyalty_rewards.c
            reward = conn.execute(sa.select(t.loyalty_rewards).where(r.id == reward_id, r.active.is_(True))).first()
            if reward is None:
                raise LoyaltyError(404, "unknown_reward", f"no active reward {reward_id}")
            if reward.stock is not None:
                taken = conn.execute(
                    t.loyalty_rewards.update().where(r.id == reward_id, r.stock > 0).values(stock=r.stock - 1)
                ).rowcount
                if not taken:
                    raise LoyaltyError(409, "reward_out_of_stock", f"reward {reward.name} is out of stock")
            entry = self._debit(
                conn, who, profile_id, key, "burn", reward.cost_points, program, ch, store_id,
                f"reward: {reward.name}", None,
            )  # fmt: skip
            claim = {
                "id": new_id(),
                "reward_id": reward_id,
                "profile_id": profile_id,
                "entry_id": entry["id"],
                "claimed_at": entry["created_at"],
                "used_at": None,
                "used_channel": None,
                "used_store_id": None,
            }
            conn.execute(t.loyalty_reward_claims.insert().values(**claim))
            what = {"reward_id": reward_id, "reward_name": reward.name, "claim_id": claim["id"]}
            self._send(conn, who, "Reward Claimed", {**what, "points": reward.cost_points}, ch, entry["created_at"])
            return {**claim, "entry": entry, "replayed": False}

        return self.committer.run(run)

    def use_claim(self, claim_id: str, channel: str, store_id: str | None = None) -> dict[str, Any]:
        """Hand over a claimed reward; a claim can be used once (409 `claim_used` the second time)."""
        ch = _channel(channel)

        def run(conn: sa.Connection) -> dict[str, Any]:
            c = t.loyalty_reward_claims.c
            claim = conn.execute(sa.select(t.loyalty_reward_claims).where(c.id == claim_id)).first()
            if claim is None:
                raise LoyaltyError(404, "unknown_claim", f"no reward claim {claim_id}")
            now = utcnow()
            used = conn.execute(
                t.loyalty_reward_claims.update()
                .where(c.id == claim_id, c.used_at.is_(None))
                .values(used_at=now, used_channel=ch, used_store_id=store_id)
            ).rowcount
            if not used:
                raise LoyaltyError(409, "claim_used", f"this reward was already used {claim.used_at.isoformat()}")
            who = identity_fields(self.state, claim.profile_id) or {"anonymousId": f"profile:{claim.profile_id}"}
            self._send(
                conn,
                who,
                "Reward Used",
                {"claim_id": claim_id, "reward_id": claim.reward_id, "store_id": store_id},
                ch,
                now,
            )
            return {**dict(claim._mapping), "used_at": now, "used_channel": ch, "used_store_id": store_id}

        return self.committer.run(run)
