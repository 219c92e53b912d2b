"""State-store tables of the loyalty domain: the program, accounts, the append-only ledger, lots, rewards."""

import sqlalchemy as sa

from accord.storage import UTCDateTime, metadata

# The program (earn rules, tiers, expiry) as one JSON document, versioned by its update time.
loyalty_program = sa.Table(
    "loyalty_program",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True),
    sa.Column("config", sa.Text(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

# The current balance and tier per profile: always equal to the sum of the profile's ledger entries.
loyalty_accounts = sa.Table(
    "loyalty_accounts",
    metadata,
    sa.Column("profile_id", sa.String(26), primary_key=True),
    sa.Column("balance", sa.BigInteger(), nullable=False),
    sa.Column("lifetime_earned", sa.BigInteger(), nullable=False),
    sa.Column("tier", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

# Append only: earn, burn, expire, adjust, reverse. `points` is signed; `balance_after` is the balance it left.
loyalty_ledger = sa.Table(
    "loyalty_ledger",
    metadata,
    sa.Column("id", sa.String(26), primary_key=True),
    sa.Column("idempotency_key", sa.String(200), nullable=False, unique=True),
    sa.Column("profile_id", sa.String(26), nullable=False, index=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("points", sa.BigInteger(), nullable=False),
    sa.Column("balance_after", sa.BigInteger(), nullable=False),
    sa.Column("channel", sa.String(32), nullable=True),
    sa.Column("store_id", sa.String(64), nullable=True),
    sa.Column("order_id", sa.String(200), nullable=True, index=True),
    sa.Column("reason", sa.Text(), nullable=True),
    sa.Column("detail", sa.Text(), nullable=True),
    sa.Column("expires_at", UTCDateTime(), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

# What is left of each earned batch of points, so burns use the soonest-expiring points first and expiry takes
# only what was not spent. Sum of `remaining` per profile == the account balance.
loyalty_lots = sa.Table(
    "loyalty_lots",
    metadata,
    sa.Column("entry_id", sa.String(26), primary_key=True),
    sa.Column("profile_id", sa.String(26), nullable=False, index=True),
    sa.Column("expires_at", UTCDateTime(), nullable=True, index=True),
    sa.Column("remaining", sa.BigInteger(), nullable=False),
)
# the open lots of a profile in the order a burn takes them (spent lots are left out of the index)
sa.Index(
    "loyalty_lots_open",
    loyalty_lots.c.profile_id,
    loyalty_lots.c.expires_at,
    loyalty_lots.c.entry_id,
    sqlite_where=loyalty_lots.c.remaining > 0,
    postgresql_where=loyalty_lots.c.remaining > 0,
)

loyalty_rewards = sa.Table(
    "loyalty_rewards",
    metadata,
    sa.Column("id", sa.String(26), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("cost_points", sa.BigInteger(), nullable=False),
    sa.Column("stock", sa.Integer(), nullable=True),  # NULL: unlimited
    sa.Column("active", sa.Boolean(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

# A reward bought with points: a voucher that can be used once.
loyalty_reward_claims = sa.Table(
    "loyalty_reward_claims",
    metadata,
    sa.Column("id", sa.String(26), primary_key=True),
    sa.Column("reward_id", sa.String(26), nullable=False),
    sa.Column("profile_id", sa.String(26), nullable=False, index=True),
    sa.Column("entry_id", sa.String(26), nullable=False),
    sa.Column("claimed_at", UTCDateTime(), nullable=False),
    sa.Column("used_at", UTCDateTime(), nullable=True),
    sa.Column("used_channel", sa.String(32), nullable=True),
    sa.Column("used_store_id", sa.String(64), nullable=True),
)

# Points earned per order, so a return reverses what that order earned (and never more).
loyalty_orders = sa.Table(
    "loyalty_orders",
    metadata,
    sa.Column("order_id", sa.String(200), primary_key=True),
    sa.Column("profile_id", sa.String(26), nullable=False),
    sa.Column("amount_minor", sa.BigInteger(), nullable=False),
    sa.Column("currency", sa.String(3), nullable=True),
    sa.Column("earned", sa.BigInteger(), nullable=False),
    sa.Column("reversed", sa.BigInteger(), nullable=False),
)

# How far the order listener has read the event store (journal_seq).
loyalty_cursor = sa.Table(
    "loyalty_cursor",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("seq", sa.BigInteger(), nullable=False),
)
