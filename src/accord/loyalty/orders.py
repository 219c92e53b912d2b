"""Points from orders: earn on `Order Completed`, reverse on `Order Returned` / `Order Refunded` (idempotent by order).

Active once a loyalty program is configured (orders loaded before that earn through `history.backfill`, which
applies the same `order_action` rules). Registered with `Processor.add_listener`; keeps its own cursor over
`journal_seq` in the state store, so a missed or failed call is caught up on the next one, and replays never earn
twice (the ledger key is derived from the order).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from babel.numbers import get_currency_precision

from accord.loyalty import tables as t
from accord.loyalty.service import EarnRequest, LoyaltyError, LoyaltyService
from accord.storage.events import EventStore
from accord.storage.group_commit import begin_write

log = logging.getLogger(__name__)

CURSOR = "orders"
# A purchase earns once per order id, whichever of these events arrive (POS imports send Order Completed, the
# commerce domain Order Placed); a return, refund or cancellation reverses once per return id (commerce sends
# Order Returned and Order Refunded for the same return).
EARN_EVENTS = ("Order Completed", "Order Placed")
REVERSE_EVENTS = ("Order Returned", "Order Refunded", "Order Cancelled")


def _lines(properties: dict[str, Any], currency: str) -> list[tuple[int, str | None]] | None:
    """Per-product (amount in minor units, category) when every product has a price; else None."""
    products = properties.get("products")
    if not isinstance(products, list) or not products:
        return None
    precision = get_currency_precision(currency)
    lines: list[tuple[int, str | None]] = []
    for product in products:
        if not isinstance(product, dict) or product.get("price") is None:
            return None
        try:
            amount = Decimal(str(product["price"])) * Decimal(str(product.get("quantity", 1)))
        except (InvalidOperation, ValueError):
            return None
        category = product.get("category")
        lines.append((int(amount * 10**precision), category if isinstance(category, str) else None))
    return lines


@dataclass(frozen=True)
class OrderEarn:
    """An order event that earns: the profile and the earn request (keyed by the order)."""

    profile_id: str
    request: EarnRequest


@dataclass(frozen=True)
class OrderReversal:
    """A return, refund or cancellation: the order, the key (once per return) and the amount returned."""

    order_id: str
    idempotency_key: str
    amount_minor: int | None
    reason: str


def order_action(
    event: str,
    profile_id: str | None,
    channel: str | None,
    revenue_minor: int | None,
    currency: str | None,
    store_id: str | None,
    message_id: str,
    raw: str,
) -> OrderEarn | OrderReversal | None:
    """What an order event does to points (the rules shared by the listener and the history backfill), or None
    when it does nothing (no order id, no profile, no revenue)."""
    message = json.loads(raw)
    properties = message.get("properties") if isinstance(message.get("properties"), dict) else {}
    order_id = properties.get("order_id") or properties.get("orderId")
    if not order_id or not profile_id:
        return None
    order_id = str(order_id)
    if event in EARN_EVENTS:
        if revenue_minor is None or not currency:
            return None
        lines = _lines(properties, currency) or [(int(revenue_minor), None)]
        return OrderEarn(
            profile_id,
            EarnRequest(
                idempotency_key=f"order:{order_id}:earn",
                channel=channel or "other",
                lines=lines,
                currency=currency,
                order_id=order_id,
                store_id=store_id,
                reason=f"order {order_id}",
            ),
        )
    partial: int | None = None
    if event == "Order Cancelled":
        key = f"order:{order_id}:cancel"
    else:
        refund = properties.get("refund_minor")
        if isinstance(refund, int) and not isinstance(refund, bool) and refund > 0:
            partial = refund
        else:  # the amount returned (a refund may carry it as a negative revenue)
            partial = abs(revenue_minor) if revenue_minor else None
        return_id = properties.get("return_id")
        key = f"order:{order_id}:reverse:{return_id or message_id}"
    return OrderReversal(order_id, key, partial, event.lower())


class OrderPoints:
    """The listener: reads order events after its cursor and earns or reverses points for each."""

    def __init__(self, loyalty: LoyaltyService, events: EventStore) -> None:
        self.loyalty = loyalty
        self.events = events

    def cursor(self) -> int:
        """Last journal seq handled."""
        with self.loyalty.state.connect() as conn:
            seq = conn.execute(sa.select(t.loyalty_cursor.c.seq).where(t.loyalty_cursor.c.name == CURSOR)).scalar()
        return int(seq or 0)

    def __call__(self, after_seq: int, upto_seq: int) -> None:
        self.catch_up(upto_seq)

    def catch_up(self, upto_seq: int | None = None) -> int:
        """Handle every order event loaded after the cursor (up to UPTO_SEQ); returns how many were handled."""
        start = self.cursor()
        names = EARN_EVENTS + REVERSE_EVENTS
        marks = ", ".join("?" for _ in names)
        sql = (
            "SELECT journal_seq, event, profile_id, channel, revenue_minor, currency, store_id, message_id, raw "
            f"FROM events WHERE journal_seq > ? AND event IN ({marks})"
        )
        params: list[Any] = [start, *names]
        if upto_seq is not None:
            sql += " AND journal_seq <= ?"
            params.append(upto_seq)
        rows = self.events.query(sql + " ORDER BY journal_seq, timestamp", params)
        end = upto_seq if upto_seq is not None else max([start, *(r[0] for r in rows)])
        if not self.loyalty.enabled():  # no program yet: orders before it was set up earn nothing
            rows = []
        handled = 0
        for seq, *order_event in rows:
            try:
                if self._carry_out(order_action(*order_event)):
                    handled += 1
            except LoyaltyError as exc:  # a bad event must not stop the others; it is logged, not retried forever
                log.warning("loyalty: order event at journal seq %s skipped: %s", seq, exc.message)
        if end > start:
            with begin_write(self.loyalty.state) as conn:
                updated = conn.execute(
                    t.loyalty_cursor.update()
                    .where(t.loyalty_cursor.c.name == CURSOR, t.loyalty_cursor.c.seq < end)
                    .values(seq=end)
                ).rowcount
                if (
                    not updated
                    and conn.execute(sa.select(t.loyalty_cursor.c.seq).where(t.loyalty_cursor.c.name == CURSOR)).first()
                    is None
                ):
                    conn.execute(t.loyalty_cursor.insert().values(name=CURSOR, seq=end))
        return handled

    def _carry_out(self, action: OrderEarn | OrderReversal | None) -> bool:
        """Earn or reverse as the order event asks; whether it did anything."""
        if isinstance(action, OrderEarn):
            self.loyalty.earn(action.profile_id, action.request)
            return True
        if isinstance(action, OrderReversal):
            result = self.loyalty.reverse_order(
                action.order_id, action.idempotency_key, amount_minor=action.amount_minor, reason=action.reason
            )
            return result is not None
        return False
