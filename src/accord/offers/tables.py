"""State-store tables of the offers domain: offers, coupon codes, assignments to profiles, redemptions."""

import sqlalchemy as sa

from accord.storage import UTCDateTime, metadata

# An offer and its rules. Lists (channels, stores, segments) are JSON arrays; NULL means "any".
offers = sa.Table(
    "offers",
    metadata,
    sa.Column("id", sa.String(26), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("description", sa.Text(), nullable=False, default=""),
    sa.Column("code_policy", sa.String(16), nullable=False),  # shared | unique
    sa.Column("discount_kind", sa.String(16), nullable=False),  # percent | amount
    sa.Column("discount_value", sa.BigInteger(), nullable=False),  # basis points, or minor units
    sa.Column("currency", sa.String(3), nullable=True),
    sa.Column("starts_at", UTCDateTime(), nullable=True),
    sa.Column("ends_at", UTCDateTime(), nullable=True),
    sa.Column("channels", sa.Text(), nullable=True),
    sa.Column("stores", sa.Text(), nullable=True),
    sa.Column("segments", sa.Text(), nullable=True),
    sa.Column("min_basket_minor", sa.BigInteger(), nullable=True),
    sa.Column("per_customer_limit", sa.Integer(), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),  # active | paused | ended
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

# Every code that can be presented: the offer's one shared code, or its unique single-use codes.
coupon_codes = sa.Table(
    "coupon_codes",
    metadata,
    sa.Column("code", sa.String(64), primary_key=True),
    sa.Column("offer_id", sa.String(26), nullable=False, index=True),
    sa.Column("single_use", sa.Boolean(), nullable=False),
    sa.Column("profile_id", sa.String(26), nullable=True),  # a unique code handed to one customer
    sa.Column("redeemed_at", UTCDateTime(), nullable=True),
    sa.Column("redemption_id", sa.String(26), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

# An offer (and its code) given to a profile, with the message/delivery that delivered it when there was one.
offer_assignments = sa.Table(
    "offer_assignments",
    metadata,
    sa.Column("id", sa.String(26), primary_key=True),
    sa.Column("offer_id", sa.String(26), nullable=False),
    sa.Column("profile_id", sa.String(26), nullable=False, index=True),
    sa.Column("code", sa.String(64), nullable=True),
    sa.Column("message_id", sa.String(64), nullable=True),
    sa.Column("delivery_channel", sa.String(32), nullable=True),
    sa.Column("note", sa.Text(), nullable=True),
    sa.Column("assigned_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("offer_id", "profile_id", "code"),
)

# Uses per customer and offer: a counter updated conditionally, so the per-customer limit holds under concurrency.
offer_usage = sa.Table(
    "offer_usage",
    metadata,
    sa.Column("offer_id", sa.String(26), primary_key=True),
    sa.Column("profile_id", sa.String(26), primary_key=True),
    sa.Column("uses", sa.Integer(), nullable=False),
)

redemptions = sa.Table(
    "coupon_redemptions",
    metadata,
    sa.Column("id", sa.String(26), primary_key=True),
    sa.Column("idempotency_key", sa.String(200), nullable=False, unique=True),
    sa.Column("offer_id", sa.String(26), nullable=False, index=True),
    sa.Column("code", sa.String(64), nullable=False),
    sa.Column("profile_id", sa.String(26), nullable=True),
    sa.Column("channel", sa.String(32), nullable=False),
    sa.Column("store_id", sa.String(64), nullable=True),
    sa.Column("order_id", sa.String(200), nullable=True),
    sa.Column("basket_minor", sa.BigInteger(), nullable=True),
    sa.Column("currency", sa.String(3), nullable=True),
    sa.Column("discount_minor", sa.BigInteger(), nullable=True),
    sa.Column("redeemed_at", UTCDateTime(), nullable=False),
)
