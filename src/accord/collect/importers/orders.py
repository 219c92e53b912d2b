"""POS receipts (one CSV row per line item) to Segment "Order Completed" track messages, one per order.

Rules (docs for users repeat them):

- Rows of one order must be adjacent; they are grouped by ``order_id``. An ``order_id`` that comes back after
  other orders is rejected with code ``order_split`` (its first group is imported; merging would need the
  whole file in memory and would hide a broken export).
- A problem in any line rejects the whole order, and the rejects file lists every row of it.
- ``ordered_at`` must be ISO 8601 with a UTC offset (or ``Z``); times without one need ``timezone``.
- Money is summed exactly (Decimal); ``revenue`` is the major-unit number, the event store keeps minor units.
- A receipt without loyalty card, email or phone is imported (an anonymous cash sale).
- ``messageId`` is ``order:<order_id>``, so importing the same file again adds nothing.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from operator import itemgetter
from pathlib import Path
from typing import Any

from babel.numbers import list_currencies

from accord.collect.channels import normalise_channel
from accord.collect.importers.base import (
    DEFAULT_CHUNK,
    ImportFileError,
    ImportReport,
    Progress,
    Rejects,
    Sender,
    aware_time,
    default_rejects_path,
    open_input,
    time_reason,
    zone,
)
from accord.collect.importers.columns import resolve_columns
from accord.collect.imports import ImportSink

REQUIRED = ("order_id", "ordered_at", "sku", "quantity", "unit_price", "currency")
SHARED = ("store_id", "ordered_at", "loyalty_card", "email", "phone", "currency", "country")
ORDER_EVENT = "Order Completed"
_ZERO = Decimal(0)


@dataclass
class OrderColumns:
    """Header column of each field (None: the column of the field's own name, if present; "": none)."""

    order_id: str | None = None
    store_id: str | None = None
    ordered_at: str | None = None
    loyalty_card: str | None = None
    email: str | None = None
    phone: str | None = None
    sku: str | None = None
    quantity: str | None = None
    unit_price: str | None = None
    currency: str | None = None
    country: str | None = None  # the customer's (or the store's) country, for national phone numbers

    @classmethod
    def from_pairs(cls, pairs: Mapping[str, str]) -> OrderColumns:
        """From {field: column}; unknown fields are an error."""
        known = set(asdict(cls()))
        unknown = sorted(set(pairs) - known)
        if unknown:
            raise ImportFileError(f"unknown order field(s) {', '.join(unknown)}; fields: {', '.join(sorted(known))}")
        return cls(**pairs)


@lru_cache(maxsize=1)
def _currencies() -> frozenset[str]:
    return frozenset(list_currencies())


def _currency_problem(value: str) -> str | None:
    if len(value) != 3 or not value.isalpha():
        return f"currency must be a 3-letter ISO 4217 code, got {value[:20]!r}"
    if value.upper() not in _currencies():
        return f"currency {value!r} is not an ISO 4217 code"
    return None


def import_orders(
    path: str | Path,
    sink: ImportSink,
    mapping: OrderColumns | None = None,
    channel: str = "store",
    *,
    rejects_path: str | Path | None = None,
    timezone: str | None = None,
    country: str | None = None,
    store_countries: Mapping[str, str] | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    progress: Progress | None = None,
) -> ImportReport:
    """Import a POS receipts CSV into SINK as one "Order Completed" track message per order.

    CHANNEL is the channel of every order (``context.channel``); TIMEZONE (IANA name) is applied to times
    without an offset; the country of an order (for national phone numbers) comes from the ``country``
    column, else STORE_COUNTRIES[store_id], else COUNTRY. PROGRESS(rows_done) is called after each chunk.
    """
    path = Path(path)
    mapping = mapping or OrderColumns()
    chan = normalise_channel(channel)
    if chan is None:
        raise ImportFileError(f"unknown channel {channel!r}")
    tz = zone(timezone)
    rejects = Rejects(_rejects_path(path, rejects_path))
    report = ImportReport("orders", path)
    with open_input(path) as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader, None)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise ImportFileError(f"{path.name} is not a readable CSV file: {exc}") from exc
        if not header:
            raise ImportFileError(f"{path.name} is empty: no header row")
        cols = resolve_columns(asdict(mapping), header, REQUIRED, path)
        sender = Sender(report, sink, rejects, chunk_size, progress)
        builder = _OrderBuilder(cols, len(header), chan, tz, country, store_countries or {}, sender)
        try:
            builder.run(reader)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise ImportFileError(f"{path.name} line {reader.line_num + 1} cannot be read: {exc}") from exc
    return sender.finish()


def _rejects_path(path: Path, given: str | Path | None) -> Path:
    target = Path(given) if given else default_rejects_path(path)
    if target.resolve() == path.resolve():
        raise ImportFileError("the rejects file cannot be the input file")
    return target


class _OrderBuilder:
    """Groups adjacent rows by order id, validates an order and turns it into one message."""

    def __init__(
        self,
        cols: dict[str, int],
        width: int,
        channel: str,
        tz: Any,
        country: str | None,
        store_countries: Mapping[str, str],
        sender: Sender,
    ) -> None:
        self.cols = cols
        self.width = width
        self.channel = channel
        self.tz = tz
        self.country = country.strip().upper() if country else None
        self.store_countries = {k: v.strip().upper() for k, v in store_countries.items() if v}
        self.sender = sender
        self.seen: dict[str, int] = {}  # order id -> first row number
        self.shared_names = [name for name in SHARED if cols[name] >= 0]
        self.shared = itemgetter(*(cols[name] for name in self.shared_names))
        self.currency_ok: dict[str, str | None] = {}

    def run(self, reader: Any) -> None:
        i_oid = self.cols["order_id"]
        group: list[tuple[int, list[str]]] = []
        group_id = ""
        line = reader.line_num
        order = self.order
        reject = self.sender.reject
        for fields in reader:
            start = line + 1
            line = reader.line_num
            if not fields:
                continue  # an empty line is no row
            oid = fields[i_oid].strip() if i_oid < len(fields) else ""
            if oid == group_id:
                group.append((start, fields))
                continue
            if not oid:
                reject([(start, fields)], "missing_field", "order_id is empty")
                continue
            if group:
                order(group_id, group)
            group_id = oid
            group = [(start, fields)]
        if group:
            order(group_id, group)

    def order(self, oid: str, rows: list[tuple[int, list[str]]]) -> None:
        """Validate the rows of one order and queue its message (or reject all its rows)."""
        first_row = rows[0][0]
        if oid in self.seen:
            self.sender.reject(
                rows,
                "order_split",
                f"order {oid} appeared before (from row {self.seen[oid]}) with other orders in between; "
                "rows of one order must be adjacent",
            )
            return
        self.seen[oid] = first_row
        cols = self.cols
        width = self.width
        i_sku, i_qty, i_price = cols["sku"], cols["quantity"], cols["unit_price"]
        shared = self.shared
        problems: dict[int, tuple[str, str]] = {}
        ref: list[str] | None = None
        ref_key: Any = None
        ref_row = 0
        products: list[dict[str, Any]] = []
        total = _ZERO
        for number, fields in rows:
            if len(fields) != width:
                problems[number] = ("invalid_row", f"row has {len(fields)} fields; the header has {width}")
                continue
            if ref is None:
                ref, ref_key, ref_row = fields, shared(fields), number
            elif shared(fields) != ref_key:
                problems[number] = ("inconsistent_order", self._difference(fields, ref, ref_row, oid))
                continue
            sku = fields[i_sku].strip()
            if not sku:
                problems[number] = ("missing_field", "sku is empty")
                continue
            qty_text = fields[i_qty].strip()
            if not qty_text.isdecimal() or (qty := int(qty_text)) <= 0:
                problems[number] = ("invalid_quantity", f"quantity must be a whole number above 0, got {qty_text!r}")
                continue
            price_text = fields[i_price]
            try:
                price = Decimal(price_text)
            except InvalidOperation:
                price = None
            if price is None or not price.is_finite() or price < 0:
                problems[number] = (
                    "invalid_price",
                    f"unit_price must be a decimal number >= 0 (dot as decimal separator), got {price_text[:40]!r}",
                )
                continue
            total += qty * price
            products.append({"product_id": sku, "sku": sku, "quantity": qty, "price": float(price)})
        if ref is None:
            self._reject_order(rows, problems, oid)
            return
        ordered_text = ref[cols["ordered_at"]].strip()
        timestamp = aware_time(ordered_text, self.tz)
        if timestamp is None:
            problems.setdefault(ref_row, ("invalid_timestamp", time_reason("ordered_at", ordered_text, self.tz)))
        currency = ref[cols["currency"]].strip()
        if currency not in self.currency_ok:
            self.currency_ok[currency] = _currency_problem(currency)
        if (why := self.currency_ok[currency]) is not None:
            problems.setdefault(ref_row, ("invalid_currency", why))
        if problems:
            self._reject_order(rows, problems, oid)
            return
        currency = currency.upper()
        revenue: float | str = float(total)
        if Decimal(repr(revenue)) != total:  # more digits than a double keeps: send the exact text
            revenue = str(total)
        store = ref[cols["store_id"]].strip() if cols["store_id"] >= 0 else ""
        properties: dict[str, Any] = {"order_id": oid}
        context: dict[str, Any] = {"channel": self.channel}
        if store:
            properties["store_id"] = store
            context["store"] = {"id": store}
        properties["revenue"] = revenue
        properties["currency"] = currency
        properties["products"] = products
        properties["channel"] = self.channel
        email = ref[cols["email"]].strip() if cols["email"] >= 0 else ""
        phone = ref[cols["phone"]].strip() if cols["phone"] >= 0 else ""
        if email or phone:
            traits: dict[str, str] = {}
            if email:
                traits["email"] = email
            if phone:
                traits["phone"] = phone
            country = ref[cols["country"]].strip() if cols["country"] >= 0 else ""
            country = country or self.store_countries.get(store) or self.country or ""
            if country:
                traits["country"] = country
            context["traits"] = traits
        card = ref[cols["loyalty_card"]].strip() if cols["loyalty_card"] >= 0 else ""
        if card:
            context["externalIds"] = [{"id": card, "type": "loyalty_card", "collection": "users", "encoding": "none"}]
        message = {
            "type": "track",
            "event": ORDER_EVENT,
            "messageId": "order:" + oid,
            "timestamp": timestamp,
            "properties": properties,
            "context": context,
        }
        self.sender.add(first_row, message, rows)

    def _difference(self, fields: list[str], ref: list[str], ref_row: int, oid: str) -> str:
        for name in self.shared_names:
            i = self.cols[name]
            if fields[i] != ref[i]:
                return f"{name} {fields[i]!r} differs from {ref[i]!r} on row {ref_row} of the same order {oid}"
        return f"differs from row {ref_row} of the same order {oid}"  # pragma: no cover

    def _reject_order(self, rows: list[tuple[int, list[str]]], problems: dict[int, tuple[str, str]], oid: str) -> None:
        first_number = min(problems)
        code, reason = problems[first_number]
        note = f"order {oid} is rejected because of row {first_number}: {reason}"
        self.sender.reject_rows([(n, *problems.get(n, (code, note)), fields) for n, fields in rows])
