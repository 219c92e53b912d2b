"""State-store tables of the commerce domain: locations, catalog, stock, reservations, orders, returns, pickup."""

import sqlalchemy as sa

from accord.storage import BigIntPK, UTCDateTime, metadata

# Stores, warehouses and the online fulfilment centre. Opening hours are local wall-clock times in `timezone`:
# {"mon": ["09:00", "21:00"], "sun": null}; exceptions by local date: {"2026-12-25": null, "2026-12-24": [...]}.
locations = sa.Table(
    "locations",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("country", sa.String(2), nullable=True),
    sa.Column("city", sa.String(120), nullable=True),
    sa.Column("lat", sa.Float(), nullable=True),
    sa.Column("lon", sa.Float(), nullable=True),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("locale", sa.String(35), nullable=True),
    sa.Column("currency", sa.String(3), nullable=True),
    sa.Column("opening_hours", sa.Text(), nullable=False),
    sa.Column("hours_exceptions", sa.Text(), nullable=False),
    sa.Column("pickup", sa.Boolean(), nullable=False),
    sa.Column("ship_from_store", sa.Boolean(), nullable=False),
    sa.Column("geofence_m", sa.Integer(), nullable=False),
    sa.Column("pickup_hold_hours", sa.Integer(), nullable=False),
    sa.Column("appointment_capacity", sa.Integer(), nullable=False),
    sa.Column("appointment_minutes", sa.Integer(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

catalog_items = sa.Table(
    "catalog_items",
    metadata,
    sa.Column("sku", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(300), nullable=False),
    sa.Column("category", sa.String(120), nullable=True),
    sa.Column("price_minor", sa.BigInteger(), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("attributes", sa.Text(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

# A price for one sales channel (web, app, store, call_center, marketplace) overriding the base price.
channel_prices = sa.Table(
    "channel_prices",
    metadata,
    sa.Column("sku", sa.String(64), primary_key=True),
    sa.Column("channel", sa.String(32), primary_key=True),
    sa.Column("price_minor", sa.BigInteger(), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
)

# On-hand and reserved units per location and SKU; ATP = on_hand - reserved - safety_stock (never below 0).
stock_levels = sa.Table(
    "stock_levels",
    metadata,
    sa.Column("location_id", sa.String(64), primary_key=True),
    sa.Column("sku", sa.String(64), primary_key=True),
    sa.Column("on_hand", sa.Integer(), nullable=False),
    sa.Column("reserved", sa.Integer(), nullable=False),
    sa.Column("safety_stock", sa.Integer(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Index("ix_stock_levels_sku", "sku", "location_id"),
)

# Every change of on-hand stock: receipts, adjustments, cycle counts (with expected and counted), sales, returns.
stock_movements = sa.Table(
    "stock_movements",
    metadata,
    sa.Column("id", BigIntPK, primary_key=True, autoincrement=True),
    sa.Column("location_id", sa.String(64), nullable=False),
    sa.Column("sku", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("delta", sa.Integer(), nullable=False),
    sa.Column("expected", sa.Integer(), nullable=True),
    sa.Column("counted", sa.Integer(), nullable=True),
    sa.Column("reason", sa.String(200), nullable=True),
    sa.Column("reference", sa.String(64), nullable=True),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Index("ix_stock_movements_kind_at", "kind", "at"),
)

reservations = sa.Table(
    "reservations",
    metadata,
    sa.Column("id", sa.String(26), primary_key=True),
    sa.Column("location_id", sa.String(64), nullable=False),
    sa.Column("sku", sa.String(64), nullable=False),
    sa.Column("quantity", sa.Integer(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=True),
    sa.Column("order_id", sa.String(26), nullable=True, index=True),
    sa.Column("customer_key", sa.String(400), nullable=True),
    sa.Column("idempotency_key", sa.String(200), nullable=True, unique=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Index("ix_reservations_status_expires_at", "status", "expires_at"),
)

# "Tell me when it is back": one waiting subscription per customer, SKU and location (NULL location = anywhere).
stock_subscriptions = sa.Table(
    "stock_subscriptions",
    metadata,
    sa.Column("id", sa.String(26), primary_key=True),
    sa.Column("sku", sa.String(64), nullable=False),
    sa.Column("location_id", sa.String(64), nullable=True),
    sa.Column("customer_key", sa.String(400), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("notified_at", UTCDateTime(), nullable=True),
    sa.Column("notified_location_id", sa.String(64), nullable=True),
    sa.Index("ix_stock_subscriptions_sku_status", "sku", "status"),
)

orders = sa.Table(
    "orders",
    metadata,
    sa.Column("id", sa.String(26), primary_key=True),
    sa.Column("idempotency_key", sa.String(200), nullable=True, unique=True),
    sa.Column("channel", sa.String(32), nullable=False),
    sa.Column("fulfilment", sa.String(32), nullable=False),
    sa.Column("location_id", sa.String(64), nullable=False),
    sa.Column("origin_location_id", sa.String(64), nullable=True),
    sa.Column("customer_key", sa.String(400), nullable=True, index=True),
    sa.Column("status", sa.String(24), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("total_minor", sa.BigInteger(), nullable=False),
    sa.Column("refunded_minor", sa.BigInteger(), nullable=False),
    sa.Column("pickup_slot_start", UTCDateTime(), nullable=True),
    sa.Column("pickup_slot_end", UTCDateTime(), nullable=True),
    sa.Column("pickup_deadline", UTCDateTime(), nullable=True),
    sa.Column("shipping_address", sa.Text(), nullable=True),
    sa.Column("placed_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Index("ix_orders_location_id_status", "location_id", "status"),
)

order_lines = sa.Table(
    "order_lines",
    metadata,
    sa.Column("order_id", sa.String(26), primary_key=True),
    sa.Column("line_no", sa.Integer(), primary_key=True),
    sa.Column("sku", sa.String(64), nullable=False),
    sa.Column("quantity", sa.Integer(), nullable=False),
    sa.Column("unit_price_minor", sa.BigInteger(), nullable=False),
    sa.Column("returned_quantity", sa.Integer(), nullable=False),
    sa.Column("reservation_id", sa.String(26), nullable=True),
)

order_history = sa.Table(
    "order_history",
    metadata,
    sa.Column("id", BigIntPK, primary_key=True, autoincrement=True),
    sa.Column("order_id", sa.String(26), nullable=False, index=True),
    sa.Column("status", sa.String(24), nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("note", sa.String(300), nullable=True),
)

order_returns = sa.Table(
    "order_returns",
    metadata,
    sa.Column("id", sa.String(26), primary_key=True),
    sa.Column("idempotency_key", sa.String(200), nullable=True, unique=True),
    sa.Column("order_id", sa.String(26), nullable=False, index=True),
    sa.Column("location_id", sa.String(64), nullable=False),
    sa.Column("channel", sa.String(32), nullable=False),
    sa.Column("refund_minor", sa.BigInteger(), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("lines", sa.Text(), nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False),
)

# Who is inside which geofence right now (from location pings), to emit Store Entered / Store Exited once.
store_presence = sa.Table(
    "store_presence",
    metadata,
    sa.Column("identifier_key", sa.String(400), primary_key=True),
    sa.Column("location_id", sa.String(64), primary_key=True),
    sa.Column("entered_at", UTCDateTime(), nullable=False),
    sa.Column("last_ping_at", UTCDateTime(), nullable=False),
)

# Work for the store's associates, e.g. "a customer with a pickup order is walking in".
pickup_tasks = sa.Table(
    "pickup_tasks",
    metadata,
    sa.Column("id", sa.String(26), primary_key=True),
    sa.Column("location_id", sa.String(64), nullable=False),
    sa.Column("order_id", sa.String(26), nullable=False),
    sa.Column("customer_key", sa.String(400), nullable=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("done_at", UTCDateTime(), nullable=True),
    sa.Index("ix_pickup_tasks_location_id_status", "location_id", "status"),
)

appointments = sa.Table(
    "appointments",
    metadata,
    sa.Column("id", sa.String(26), primary_key=True),
    sa.Column("idempotency_key", sa.String(200), nullable=True, unique=True),
    sa.Column("location_id", sa.String(64), nullable=False),
    sa.Column("service", sa.String(120), nullable=False),
    sa.Column("starts_at", UTCDateTime(), nullable=False),
    sa.Column("ends_at", UTCDateTime(), nullable=False),
    sa.Column("customer_key", sa.String(400), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Index("ix_appointments_location_id_starts_at", "location_id", "starts_at"),
)

# One row per (location, slot start) with its booked count: booking is a conditional UPDATE, so capacity holds.
appointment_slots = sa.Table(
    "appointment_slots",
    metadata,
    sa.Column("location_id", sa.String(64), primary_key=True),
    sa.Column("starts_at", UTCDateTime(), primary_key=True),
    sa.Column("booked", sa.Integer(), nullable=False),
)
