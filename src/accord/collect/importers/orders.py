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
    ImportFileError,
    ImportReport,
    Progress,
    Sender,
    aware_time,
    csv_input,
    read_all,
    rejects_for,
    time_reason,
    zone,
)
from accord.collect.importers.columns import resolve_columns
from accord.collect.imports import ImportSink

REQUIRED = ("order_id", "ordered_at", "sku", "quantity", "unit_price", "currency")
SHARED = ("store_id", "ordered_at", "loyalty_card", "email", "phone", "currency", "country")
ORDER_EVENT = "Order Completed"
ORDERS_CHUNK = 2500  # orders per chunk: the most one batch may hold; an order message is small (~400 bytes)
_ZERO = Decimal(0)
_NAN = Decimal("NaN")


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


def _currency_problem(value: str) -> str:
    if len(value) != 3 or not value.isalpha():
        return f"currency must be a 3-letter ISO 4217 code, got {value[:20]!r}"
    return f"currency {value!r} is not an ISO 4217 code"


def _currency_code(cache: dict[str, str], value: str) -> str:
    """The ISO 4217 code of a currency cell ("" when it is not one), remembered in CACHE."""
    code = value.strip().upper()
    code = code if len(code) == 3 and code.isalpha() and code in _currencies() else ""
    cache[value] = code
    return code


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
    chunk_size: int = ORDERS_CHUNK,
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
    rejects = rejects_for(path, rejects_path)
    with csv_input(path) as (reader, header):
        cols = resolve_columns(asdict(mapping), header, REQUIRED, path)
        sender = Sender(ImportReport("orders", path), sink, rejects, chunk_size, progress)
        builder = _OrderBuilder(cols, len(header), chan, tz, country, store_countries or {}, sender)
        return read_all(sender, reader, path, builder.run)


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
        self.i_sku, self.i_qty, self.i_price = cols["sku"], cols["quantity"], cols["unit_price"]
        self.i_time, self.i_currency, self.i_store = cols["ordered_at"], cols["currency"], cols["store_id"]
        self.i_email, self.i_phone, self.i_card, self.i_country = (
            cols["email"],
            cols["phone"],
            cols["loyalty_card"],
            cols["country"],
        )
        self.currencies: dict[str, str] = {}  # currency cell -> ISO code, "" when invalid

    def run(self, reader: Any) -> None:
        i_oid, width = self.cols["order_id"], self.width
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
                if i_oid < len(fields):
                    reject([(start, fields)], "missing_field", "order_id is empty")
                else:
                    reject([(start, fields)], "invalid_row", f"row has {len(fields)} fields; the header has {width}")
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
        seen = self.seen
        if oid in seen:
            self.sender.reject(
                rows,
                "order_split",
                f"order {oid} appeared before (from row {seen[oid]}) with other orders in between; "
                "rows of one order must be adjacent",
            )
            return
        seen[oid] = first_row
        width = self.width
        i_sku, i_qty, i_price = self.i_sku, self.i_qty, self.i_price
        shared = self.shared
        problems: dict[int, tuple[str, str]] | None = None
        ref: list[str] | None = None
        ref_key: Any = None
        ref_row = 0
        products: list[dict[str, Any]] = []
        total = _ZERO
        for number, fields in rows:
            if len(fields) != width:
                problems = problems or {}
                problems[number] = ("invalid_row", f"row has {len(fields)} fields; the header has {width}")
                continue
            if ref is None:
                ref, ref_key, ref_row = fields, shared(fields), number
            elif shared(fields) != ref_key:
                problems = problems or {}
                problems[number] = ("inconsistent_order", self._difference(fields, ref, ref_row, oid))
                continue
            sku = fields[i_sku].strip()
            try:
                qty = int(fields[i_qty])
                price = Decimal(fields[i_price])
            except (ValueError, InvalidOperation):
                qty, price = 0, _NAN
            if sku and qty > 0 and price.is_finite() and price >= 0:
                total += qty * price
                products.append({"product_id": sku, "sku": sku, "quantity": qty, "price": float(fields[i_price])})
                continue
            problems = problems or {}
            problems[number] = self._line_problem(sku, fields[i_qty], fields[i_price])
        if ref is None or problems:
            self._reject_order(rows, problems or {}, oid, ref, ref_row)
            return
        timestamp = aware_time(ref[self.i_time].strip(), self.tz)
        cell = ref[self.i_currency]
        currency = self.currencies.get(cell)
        if currency is None:
            currency = _currency_code(self.currencies, cell)
        if timestamp is None or not currency:
            self._reject_order(rows, {}, oid, ref, ref_row)
            return
        # A double keeps 15 significant digits exactly (JSON prints its shortest form); beyond, send the text.
        revenue: float | str = total_text if len(total_text := str(total)) > 15 else float(total)
        channel = self.channel
        i_store = self.i_store
        store = ref[i_store].strip() if i_store >= 0 else ""
        context: dict[str, Any] = {"channel": channel}
        if store:
            properties: dict[str, Any] = {
                "order_id": oid,
                "store_id": store,
                "revenue": revenue,
                "currency": currency,
                "products": products,
                "channel": channel,
            }
            context["store"] = {"id": store}
        else:
            properties = {
                "order_id": oid,
                "revenue": revenue,
                "currency": currency,
                "products": products,
                "channel": channel,
            }
        i_email, i_phone, i_card = self.i_email, self.i_phone, self.i_card
        email = ref[i_email].strip() if i_email >= 0 else ""
        phone = ref[i_phone].strip() if i_phone >= 0 else ""
        if email or phone:
            traits: dict[str, str] = {}
            if email:
                traits["email"] = email
            if phone:
                traits["phone"] = phone
            country = ref[self.i_country].strip() if self.i_country >= 0 else ""
            country = country or self.store_countries.get(store) or self.country or ""
            if country:
                traits["country"] = country
            context["traits"] = traits
        card = ref[i_card].strip() if i_card >= 0 else ""
        if card:
            context["externalIds"] = [{"id": card, "type": "loyalty_card", "collection": "users", "encoding": "none"}]
        self.sender.add(
            first_row,
            {
                "type": "track",
                "event": ORDER_EVENT,
                "messageId": "order:" + oid,
                "timestamp": timestamp,
                "properties": properties,
                "context": context,
            },
            rows,
        )

    @staticmethod
    def _line_problem(sku: str, qty_text: str, price_text: str) -> tuple[str, str]:
        if not sku:
            return ("missing_field", "sku is empty")
        try:
            qty = int(qty_text)
        except ValueError:
            qty = 0
        if qty <= 0:
            return ("invalid_quantity", f"quantity must be a whole number above 0, got {qty_text[:40]!r}")
        return (
            "invalid_price",
            f"unit_price must be a decimal number >= 0 (with a dot as decimal separator), got {price_text[:40]!r}",
        )

    def _difference(self, fields: list[str], ref: list[str], ref_row: int, oid: str) -> str:
        for name in self.shared_names:
            i = self.cols[name]
            if fields[i] != ref[i]:
                return f"{name} {fields[i]!r} differs from {ref[i]!r} on row {ref_row} of the same order {oid}"
        return f"differs from row {ref_row} of the same order {oid}"  # pragma: no cover

    def _reject_order(
        self,
        rows: list[tuple[int, list[str]]],
        problems: dict[int, tuple[str, str]],
        oid: str,
        ref: list[str] | None,
        ref_row: int,
    ) -> None:
        if ref is not None:  # the order-level checks, for a complete list of reasons
            text = ref[self.i_time].strip()
            if aware_time(text, self.tz) is None:
                problems.setdefault(ref_row, ("invalid_timestamp", time_reason("ordered_at", text, self.tz)))
            cell = ref[self.i_currency]
            if not _currency_code(self.currencies, cell):
                problems.setdefault(ref_row, ("invalid_currency", _currency_problem(cell.strip())))
        if not problems:  # pragma: no cover - every path here has found a problem
            problems[rows[0][0]] = ("invalid_row", "the order could not be read")
        first_number = min(problems)
        code, reason = problems[first_number]
        note = f"order {oid} is rejected because of row {first_number}: {reason}"
        self.sender.reject_rows([(n, *problems.get(n, (code, note)), fields) for n, fields in rows])
