"""Who bought what, as messaging knows it: purchased SKUs per person from `Order Completed` events of any channel,
less returns, so a promotion is not sent to someone who already bought the promoted item.

Messaging learns purchases from the timeline (web, app, store receipts, call centre: every `Order Completed`),
never from commerce's tables. A processor listener keeps the table current from its own cursor; on a new install
(or an upgrade) its cursor starts at zero, so the first loaded slice fills the table from the whole event store.
`rebuild` does it again from scratch (`accord purchases rebuild`).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from accord.messaging import tables as t
from accord.storage import utcnow
from accord.storage.events import EventStore

PURCHASE_EVENTS = ("Order Completed",)
# A return, a refund or a cancellation gives the items back: they no longer count as bought.
RETURN_EVENTS = ("Order Returned", "Order Refunded", "Order Cancelled")
CURSOR = "purchases"
IDENTITY_CURSOR = "purchases_identity"  # identity changes (merges, unmerges) already followed
DEFAULT_WITHIN = timedelta(days=90)
SLICE = 2000  # journal entries read (and written) per transaction when catching up
_DURATION = re.compile(r"^\s*(\d+)\s*([dwh]?)\s*$")
_UNITS = {"d": "days", "": "days", "w": "weeks", "h": "hours"}


class PromotionError(ValueError):
    """A `promotes` declaration that makes no sense (no SKUs or categories, a bad window)."""


@dataclass(frozen=True)
class Promotion:
    """The items a message promotes: people who bought one of them within WITHIN are not sent it."""

    skus: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    within: timedelta = DEFAULT_WITHIN

    @classmethod
    def parse(cls, spec: Any) -> Promotion | None:
        """From {"skus": [...], "categories": [...], "within": "90d"} (None or {} declare nothing). WITHIN is a
        number of days or `<n>d`, `<n>w`, `<n>h`; default 90 days."""
        if spec is None or spec == {}:
            return None
        if not isinstance(spec, Mapping):
            raise PromotionError('promotes must be an object like {"skus": ["SKU-1"], "within": "90d"}')
        unknown = set(spec) - {"skus", "categories", "within"}
        if unknown:
            raise PromotionError(f"promotes: unknown keys {sorted(unknown)}; known: skus, categories, within")
        skus, categories = _names(spec.get("skus"), "skus"), _names(spec.get("categories"), "categories")
        if not skus and not categories:
            raise PromotionError("promotes needs at least one SKU or category")
        return cls(skus, categories, _window(spec.get("within")))

    def to_dict(self) -> dict[str, Any]:
        """JSON form, as declared (within in days or hours)."""
        out: dict[str, Any] = {"skus": list(self.skus)}
        if self.categories:
            out["categories"] = list(self.categories)
        seconds = int(self.within.total_seconds())
        out["within"] = f"{seconds // 86400}d" if seconds % 86400 == 0 else f"{seconds // 3600}h"
        return out

    def label(self) -> str:
        """E.g. 'within 90d'."""
        return "within " + str(self.to_dict()["within"])


def _names(value: Any, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str | int) and str(v).strip() for v in value):
        raise PromotionError(f"promotes.{key} must be a list of non-empty names")
    return tuple(dict.fromkeys(str(v).strip() for v in value))


def _window(value: Any) -> timedelta:
    if value is None:
        return DEFAULT_WITHIN
    match = _DURATION.match(str(value)) if not isinstance(value, bool) else None
    if match is None or int(match.group(1)) <= 0:
        raise PromotionError(f"promotes.within must be like 90d, 12w or 48h, got {value!r}")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def bought(conn: sa.Connection, profile_ids: Sequence[str], promotion: Promotion, now: datetime) -> dict[str, str]:
    """profile id -> the first promoted SKU (or SKU of a promoted category) they bought within the window and did
    not return, for the people of PROFILE_IDS who did: a few statements per chunk (by the (sku, profile) index for
    SKUs), so the planner's check per recipient is a dict lookup."""
    ids = list(dict.fromkeys(profile_ids))
    since = now - promotion.within
    out: dict[str, str] = {}
    if promotion.skus:
        for pid, sku, _category in _bought_rows(conn, ids, "sku", promotion.skus, since):
            out.setdefault(pid, sku)
    if promotion.categories:
        for pid, sku, category in _bought_rows(conn, ids, "category", promotion.categories, since):
            out.setdefault(pid, f"{sku} (category {category})")
    return out


_SQLITE_BOUGHT = (
    "SELECT profile_id, sku, category FROM msg_purchases INDEXED BY {index} "
    "WHERE {column} IN (SELECT value FROM json_each(?)) AND profile_id IN (SELECT value FROM json_each(?)) "
    "AND purchased_at > ? AND quantity > returned_quantity ORDER BY purchased_at DESC"
)
_INDEXES = {"sku": "ix_msg_purchases_sku_profile_id", "category": "ix_msg_purchases_category_profile_id"}


def _bought_rows(
    conn: sa.Connection, ids: list[str], column: str, names: Sequence[str], since: datetime
) -> list[tuple[str, str, str | None]]:
    """(profile, sku, category) of live purchases since SINCE whose COLUMN is one of NAMES, newest first. On SQLite
    one statement with the ids as one JSON parameter (no 500-parameter lists to build), as the cap history."""
    if conn.dialect.name == "sqlite":
        sql = _SQLITE_BOUGHT.format(index=_INDEXES[column], column=column)
        stamp = since.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")  # as SQLAlchemy stores it
        return [tuple(r) for r in conn.exec_driver_sql(sql, (json.dumps(list(names)), json.dumps(ids), stamp))]
    p = t.purchases
    rows: list[tuple[str, str, str | None]] = []
    for start in range(0, len(ids), 500):
        result = conn.execute(
            sa.select(p.c.profile_id, p.c.sku, p.c.category)
            .where(
                p.c[column].in_(list(names)),
                p.c.profile_id.in_(ids[start : start + 500]),
                p.c.purchased_at > since,
                p.c.quantity > p.c.returned_quantity,
            )
            .order_by(p.c.purchased_at.desc())
        )
        rows.extend((pid, sku, category) for pid, sku, category in result)
    return rows


def _products(properties: Mapping[str, Any]) -> list[tuple[str, str | None, int]] | None:
    """(sku, category, quantity) of each product line, summed by SKU; None when the event lists no products."""
    products = properties.get("products")
    if not isinstance(products, list):
        return None
    lines: dict[str, tuple[str | None, int]] = {}
    for product in products:
        if not isinstance(product, Mapping):
            continue
        sku = product.get("sku") or product.get("product_id") or product.get("productId") or product.get("id")
        if sku is None or str(sku).strip() == "":
            continue
        category = product.get("category")
        try:
            quantity = max(int(product.get("quantity", 1)), 1)
        except (TypeError, ValueError):
            quantity = 1
        old = lines.get(str(sku))
        lines[str(sku)] = (
            category if isinstance(category, str) else (old[0] if old else None),
            quantity + (old[1] if old else 0),
        )
    return [(sku, cat, qty) for sku, (cat, qty) in lines.items()]


EventRow = tuple[str, str, int, str | None, Any, str]
"""(event, profile id, epoch ms, channel, message id, raw JSON) as read from the event store."""


def apply_in(conn: sa.Connection, rows: Sequence[EventRow]) -> int:
    """Apply order events, in order, to the table in CONN's transaction; how many changed something. A purchase is
    keyed by (person, order, SKU), so a replayed event changes nothing (purchases are inserted in batches until a
    return needs them); a return takes its units back once per return id (a return reported as both `Order
    Returned` and `Order Refunded` counts once)."""
    p = t.purchases
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    statement = insert(p).on_conflict_do_nothing(index_elements=["profile_id", "order_id", "sku"])
    pending: list[dict[str, Any]] = []
    changed = 0
    for event, profile_id, ms, channel, message_id, raw in rows:
        message = json.loads(raw)
        properties = message.get("properties") if isinstance(message.get("properties"), dict) else {}
        order_id = str(properties.get("order_id") or properties.get("orderId") or message_id)
        lines = _products(properties)
        at = datetime.fromtimestamp(ms / 1000, UTC)
        if event in PURCHASE_EVENTS:
            if lines:
                changed += 1
                pending.extend(
                    {
                        "profile_id": profile_id,
                        "order_id": order_id,
                        "sku": sku,
                        "category": category,
                        "quantity": quantity,
                        "returned_quantity": 0,
                        "purchased_at": at,
                        "channel": channel,
                    }
                    for sku, category, quantity in lines
                )
            continue
        if pending:  # the purchases this return may take back are in the table first
            conn.execute(statement, pending)
            pending = []
        changed += _return_in(
            conn, profile_id, order_id, lines, f"{order_id}:{properties.get('return_id') or message_id}", at
        )
    if pending:
        conn.execute(statement, pending)
    return changed


def _return_in(
    conn: sa.Connection,
    profile_id: str,
    order_id: str,
    lines: list[tuple[str, str | None, int]] | None,
    return_key: str,
    at: datetime,
) -> int:
    p, r = t.purchases, t.purchase_returns
    if conn.execute(sa.select(r.c.return_key).where(r.c.return_key == return_key)).first() is not None:
        return 0
    conn.execute(r.insert().values(return_key=return_key, profile_id=profile_id, at=at))
    where = [p.c.profile_id == profile_id, p.c.order_id == order_id]
    if not lines:  # no products listed: the whole order goes back
        conn.execute(p.update().where(*where).values(returned_quantity=p.c.quantity))
        return 1
    smaller = sa.func.min if conn.dialect.name == "sqlite" else sa.func.least  # SQLite's min(a, b) is LEAST
    for sku, _category, quantity in lines:
        conn.execute(
            p.update()
            .where(*where, p.c.sku == sku)
            .values(returned_quantity=smaller(p.c.quantity, p.c.returned_quantity + quantity))
        )
    return 1


_COLUMNS = "SELECT event, profile_id, epoch_ms(timestamp), channel, message_id, raw FROM events "
_ORDER = " AND type = 'track' AND profile_id IS NOT NULL ORDER BY journal_seq, timestamp, event_id"
IdentityChanges = Callable[[int], list[tuple[int, str, str]]]
"""identity change seq -> (seq, identifier key, new profile id) after it (IdentityGraph.changes_since)."""


def _marks(n: int) -> str:
    return ", ".join("?" for _ in range(n))


def _events_sql(n: int) -> str:
    return _COLUMNS + f"WHERE journal_seq > ? AND journal_seq <= ? AND event IN ({_marks(n)})" + _ORDER


def _order_key(message_id: str, raw: str) -> str:
    properties = json.loads(raw).get("properties")
    properties = properties if isinstance(properties, dict) else {}
    return str(properties.get("order_id") or properties.get("orderId") or message_id)


class PurchaseLedger:
    """The processor listener that keeps `msg_purchases` current, and its rebuild from the event store."""

    def __init__(self, engine: sa.Engine, events: EventStore, changes: IdentityChanges | None = None) -> None:
        self.engine = engine
        self.events = events
        self.changes = changes  # with it, merges and unmerges move purchases to the person they now belong to
        self._lock = threading.Lock()  # the processor thread and a rebuild request never interleave
        # cursors kept in memory between slices; written to the state store when something changed or every 10 s
        # (most slices hold no order event: spare the state store a write per slice)
        self._done: int | None = None
        self._saved_at = 0.0
        self._identity_seen: int | None = None

    def __call__(self, _after: int, upto: int) -> None:
        self.catch_up(upto)

    def cursor(self, name: str = CURSOR) -> int:
        """Last journal seq handled (0 before the first run: the first run reads the whole store)."""
        return self._cursor(name) or 0

    def _cursor(self, name: str) -> int | None:
        c = t.listener_cursors
        with self.engine.connect() as conn:
            seq = conn.execute(sa.select(c.c.seq).where(c.c.name == name)).scalar()
        return None if seq is None else int(seq)

    def catch_up(self, upto: int | None = None) -> int:
        """Apply order events loaded after the cursor (up to UPTO, default everything loaded), a slice of journal
        entries per transaction with the cursor; returns how many events changed the table."""
        with self._lock:
            return self._catch_up(upto)

    def _catch_up(self, upto: int | None) -> int:
        end = self.events.cursors()[0] if upto is None else upto
        done = self._done if self._done is not None else self.cursor()
        names = [*PURCHASE_EVENTS, *RETURN_EVENTS]
        changed = 0
        while done < end:
            stop = min(done + SLICE, end)
            rows = self.events.query(_events_sql(len(names)), [done, stop, *names])
            if not rows and time.monotonic() - self._saved_at < 10:
                done = self._done = stop  # a replay of this range would find nothing
                continue
            with self.engine.begin() as conn:
                changed += apply_in(conn, rows)
                _set_cursor(conn, stop)
            done = self._done = stop
            self._saved_at = time.monotonic()
        return changed + self._follow_identity(done)

    def _follow_identity(self, done: int) -> int:
        """After merges or unmerges the event store gives order events to another profile: the record of every
        profile concerned (the new owners and the former owners of those orders) is read again from its events (up
        to journal seq DONE), in one transaction per 500 new owners."""
        if self.changes is None:
            return 0
        applied = self.events.cursors()[1]
        seen = self._identity_seen if self._identity_seen is not None else self._cursor(IDENTITY_CURSOR)
        if seen is None or applied <= seen:
            if seen is None:  # first run: the events were read with their current owners already
                with self.engine.begin() as conn:
                    _set_cursor(conn, applied, IDENTITY_CURSOR)
            self._identity_seen = max(seen or 0, applied)
            return 0
        owners = sorted({pid for seq, _key, pid in self.changes(seen) if seq <= applied})
        names = [*PURCHASE_EVENTS, *RETURN_EVENTS]
        sql = _COLUMNS + "WHERE journal_seq <= ? AND event IN ({}) AND profile_id IN ({})" + _ORDER
        changed = 0
        p, r = t.purchases, t.purchase_returns
        for start in range(0, len(owners), 500):
            chunk = owners[start : start + 500]
            rows = self.events.query(sql.format(_marks(len(names)), _marks(len(chunk))), [done, *names, *chunk])
            orders = sorted({_order_key(str(row[4]), row[5]) for row in rows})
            with self.engine.connect() as conn:
                former: set[str] = set()
                for o in range(0, len(orders), 500):
                    former.update(
                        conn.execute(
                            sa.select(p.c.profile_id).where(p.c.order_id.in_(orders[o : o + 500])).distinct()
                        ).scalars()
                    )
            former -= set(chunk)
            if former:
                ids = sorted(former)
                rows += self.events.query(sql.format(_marks(len(names)), _marks(len(ids))), [done, *names, *ids])
            everyone = [*chunk, *former]
            with self.engine.begin() as conn:
                for o in range(0, len(everyone), 500):
                    conn.execute(p.delete().where(p.c.profile_id.in_(everyone[o : o + 500])))
                    conn.execute(r.delete().where(r.c.profile_id.in_(everyone[o : o + 500])))
                changed += apply_in(conn, rows)
        with self.engine.begin() as conn:
            _set_cursor(conn, applied, IDENTITY_CURSOR)
        self._identity_seen = applied
        return changed

    def rebuild(self, progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
        """Empty the table and read every order event of the event store again (after an upgrade, an import
        straight into the event store, or to check it): purchases, returns and the time it took."""
        started = utcnow()
        with self._lock:
            end = self.events.cursors()[0]
            with self.engine.begin() as conn:
                conn.execute(t.purchases.delete())
                conn.execute(t.purchase_returns.delete())
                _set_cursor(conn, 0)
                _set_cursor(conn, self.events.cursors()[1], IDENTITY_CURSOR)  # events carry their current owners
            self._done, self._identity_seen = 0, None
            changed = 0
            for done in range(0, end, SLICE * 10):
                changed += self._catch_up(min(done + SLICE * 10, end))
                if progress:
                    progress(min(done + SLICE * 10, end), end)
        with self.engine.connect() as conn:
            lines = int(conn.execute(sa.select(sa.func.count()).select_from(t.purchases)).scalar_one())
            people = int(conn.execute(sa.select(sa.func.count(sa.distinct(t.purchases.c.profile_id)))).scalar_one())
        seconds = (utcnow() - started).total_seconds()
        return {"events": changed, "purchase_lines": lines, "people": people, "upto_seq": end, "seconds": seconds}


def _set_cursor(conn: sa.Connection, seq: int, name: str = CURSOR) -> None:
    c = t.listener_cursors
    if conn.execute(c.update().where(c.c.name == name).values(seq=seq)).rowcount == 0:
        conn.execute(c.insert().values(name=name, seq=seq))


def purchases_of(engine: sa.Engine, profile_id: str) -> list[dict[str, Any]]:
    """What messaging holds as bought by PROFILE_ID, newest first (data-subject export, support, tests)."""
    p = t.purchases
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(p).where(p.c.profile_id == profile_id).order_by(p.c.purchased_at.desc(), p.c.sku)
        ).all()
    return [
        {
            "order_id": r.order_id,
            "sku": r.sku,
            "category": r.category,
            "quantity": r.quantity,
            "returned_quantity": r.returned_quantity,
            "purchased_at": r.purchased_at.isoformat(),
            "channel": r.channel,
        }
        for r in rows
    ]
