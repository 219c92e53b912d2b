"""The catalog: products with a base price and per-channel prices, in integer minor units and ISO 4217 currency."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from babel.numbers import get_currency_precision

from accord.commerce.errors import InvalidInput, NotFound
from accord.commerce.tables import catalog_items, channel_prices
from accord.storage import utcnow

SALES_CHANNELS = ("web", "app", "store", "call_center", "marketplace")


def sales_channel(value: str) -> str:
    """Validate a sales channel name."""
    channel = value.strip().lower().replace("call_centre", "call_center")
    if channel not in SALES_CHANNELS:
        raise InvalidInput(f"channel must be one of {', '.join(SALES_CHANNELS)}, got {value!r}", code="invalid_channel")
    return channel


def currency_code(value: Any) -> str:
    """Validate an ISO 4217 code."""
    if not isinstance(value, str) or len(value.strip()) != 3 or not value.strip().isalpha():
        raise InvalidInput(f"currency must be an ISO 4217 code, got {value!r}", code="invalid_currency")
    return value.strip().upper()


def to_minor(amount: Any, currency: str) -> int:
    """A major-unit decimal ('129.99') to integer minor units, exactly (InvalidInput if it has too many decimals)."""
    try:
        value = Decimal(str(amount).strip())
    except InvalidOperation as exc:
        raise InvalidInput(f"{amount!r} is not a decimal amount", code="invalid_amount") from exc
    if not value.is_finite() or value < 0:
        raise InvalidInput(f"{amount!r} is not a non-negative amount", code="invalid_amount")
    scaled = value.scaleb(get_currency_precision(currency))
    if scaled != scaled.to_integral_value():
        raise InvalidInput(f"{amount!r} has more decimals than {currency} allows", code="invalid_amount")
    return int(scaled)


def _minor(data: Mapping[str, Any], currency: str) -> int:
    if "price_minor" in data:
        value = data["price_minor"]
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise InvalidInput("price_minor must be a non-negative whole number", code="invalid_amount")
        return value
    if "price" in data:
        return to_minor(data["price"], currency)
    raise InvalidInput("a price needs price_minor (or price in major units)", code="invalid_amount")


def upsert_products(state: sa.Engine, items: Sequence[Mapping[str, Any]]) -> int:
    """Create or replace products: {sku, name, category?, price_minor|price, currency, prices?: {channel: {...}}}."""
    rows: list[dict[str, Any]] = []
    prices: list[dict[str, Any]] = []
    now = utcnow()
    for item in items:
        sku = item.get("sku")
        if not isinstance(sku, str) or not sku.strip() or len(sku) > 64:
            raise InvalidInput("a product needs a sku (1-64 characters)", code="invalid_product")
        currency = currency_code(item.get("currency"))
        attributes = {
            k: v
            for k, v in item.items()
            if k not in {"sku", "name", "category", "price", "price_minor", "currency", "prices"}
        }
        rows.append(
            {
                "sku": sku.strip(),
                "name": str(item.get("name") or sku),
                "category": item.get("category") or None,
                "price_minor": _minor(item, currency),
                "currency": currency,
                "attributes": json.dumps(attributes, default=str),
                "updated_at": now,
            }
        )
        for channel, price in (item.get("prices") or {}).items():
            if not isinstance(price, Mapping):
                raise InvalidInput("prices maps a channel to {price_minor, currency}", code="invalid_amount")
            cur = currency_code(price.get("currency", currency))
            prices.append(
                {
                    "sku": sku.strip(),
                    "channel": sales_channel(channel),
                    "price_minor": _minor(price, cur),
                    "currency": cur,
                }
            )
    with state.begin() as conn:
        skus = [r["sku"] for r in rows]
        for start in range(0, len(skus), 500):
            chunk = skus[start : start + 500]
            conn.execute(catalog_items.delete().where(catalog_items.c.sku.in_(chunk)))
        if rows:
            conn.execute(catalog_items.insert(), rows)
        for price in prices:
            conn.execute(
                channel_prices.delete().where(
                    channel_prices.c.sku == price["sku"], channel_prices.c.channel == price["channel"]
                )
            )
        if prices:
            conn.execute(channel_prices.insert(), prices)
    return len(rows)


def set_channel_price(state: sa.Engine, sku: str, channel: str, price_minor: int, currency: str) -> None:
    """Set the price of SKU on one sales channel (e.g. the same book cheaper online)."""
    channel = sales_channel(channel)
    currency = currency_code(currency)
    get_product(state, sku)
    with state.begin() as conn:
        conn.execute(channel_prices.delete().where(channel_prices.c.sku == sku, channel_prices.c.channel == channel))
        conn.execute(
            channel_prices.insert().values(sku=sku, channel=channel, price_minor=price_minor, currency=currency)
        )


def get_product(state: sa.Engine, sku: str) -> dict[str, Any]:
    """A product with its base price and channel prices (NotFound if unknown)."""
    with state.connect() as conn:
        row = conn.execute(sa.select(catalog_items).where(catalog_items.c.sku == sku)).first()
        if row is None:
            raise NotFound(f"no product with sku {sku!r}", code="unknown_sku")
        prices = conn.execute(sa.select(channel_prices).where(channel_prices.c.sku == sku)).all()
    return {
        "sku": row.sku,
        "name": row.name,
        "category": row.category,
        "price_minor": row.price_minor,
        "currency": row.currency,
        "attributes": json.loads(row.attributes),
        "prices": {p.channel: {"price_minor": p.price_minor, "currency": p.currency} for p in prices},
    }


def price_for(conn: sa.Connection, sku: str, channel: str) -> tuple[int, str]:
    """(price_minor, currency) of SKU on CHANNEL: the channel price, else the base price."""
    row = conn.execute(
        sa.select(channel_prices.c.price_minor, channel_prices.c.currency).where(
            channel_prices.c.sku == sku, channel_prices.c.channel == channel
        )
    ).first()
    if row is not None:
        return int(row.price_minor), str(row.currency)
    base = conn.execute(
        sa.select(catalog_items.c.price_minor, catalog_items.c.currency).where(catalog_items.c.sku == sku)
    ).first()
    if base is None:
        raise NotFound(f"no product with sku {sku!r}", code="unknown_sku")
    return int(base.price_minor), str(base.currency)


def count_products(state: sa.Engine) -> int:
    """How many products the catalog holds."""
    with state.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(catalog_items)).scalar_one())


def skus(state: sa.Engine, limit: int = 100, after: str | None = None) -> list[str]:
    """SKUs in order (for paging through the catalog)."""
    query = sa.select(catalog_items.c.sku).order_by(catalog_items.c.sku).limit(limit)
    if after:
        query = query.where(catalog_items.c.sku > after)
    with state.connect() as conn:
        return list(conn.execute(query).scalars())
