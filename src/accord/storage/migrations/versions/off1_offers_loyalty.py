"""Offers and loyalty schema: offers, coupon codes, assignments, usage, redemptions; loyalty program, accounts,
ledger, lots, rewards, claims, orders, cursor.

Revision ID: off1
Revises: 0001
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "off1"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "coupon_codes",
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("offer_id", sa.String(length=26), nullable=False),
        sa.Column("single_use", sa.Boolean(), nullable=False),
        sa.Column("profile_id", sa.String(length=26), nullable=True),
        sa.Column("redeemed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("redemption_id", sa.String(length=26), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_coupon_codes")),
    )
    op.create_index(op.f("ix_coupon_codes_offer_id"), "coupon_codes", ["offer_id"], unique=False)
    op.create_table(
        "coupon_redemptions",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("offer_id", sa.String(length=26), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("profile_id", sa.String(length=26), nullable=True),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("store_id", sa.String(length=64), nullable=True),
        sa.Column("order_id", sa.String(length=200), nullable=True),
        sa.Column("basket_minor", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("discount_minor", sa.BigInteger(), nullable=True),
        sa.Column("redeemed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coupon_redemptions")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_coupon_redemptions_idempotency_key")),
    )
    op.create_index(op.f("ix_coupon_redemptions_offer_id"), "coupon_redemptions", ["offer_id"], unique=False)
    op.create_table(
        "loyalty_accounts",
        sa.Column("profile_id", sa.String(length=26), nullable=False),
        sa.Column("balance", sa.BigInteger(), nullable=False),
        sa.Column("lifetime_earned", sa.BigInteger(), nullable=False),
        sa.Column("tier", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("profile_id", name=op.f("pk_loyalty_accounts")),
    )
    op.create_table(
        "loyalty_cursor",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_loyalty_cursor")),
    )
    op.create_table(
        "loyalty_ledger",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("profile_id", sa.String(length=26), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("balance_after", sa.BigInteger(), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=True),
        sa.Column("store_id", sa.String(length=64), nullable=True),
        sa.Column("order_id", sa.String(length=200), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loyalty_ledger")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_loyalty_ledger_idempotency_key")),
    )
    op.create_index(op.f("ix_loyalty_ledger_order_id"), "loyalty_ledger", ["order_id"], unique=False)
    op.create_index(op.f("ix_loyalty_ledger_profile_id"), "loyalty_ledger", ["profile_id"], unique=False)
    op.create_table(
        "loyalty_lots",
        sa.Column("entry_id", sa.String(length=26), nullable=False),
        sa.Column("profile_id", sa.String(length=26), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("remaining", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("entry_id", name=op.f("pk_loyalty_lots")),
    )
    op.create_index(op.f("ix_loyalty_lots_expires_at"), "loyalty_lots", ["expires_at"], unique=False)
    op.create_index(op.f("ix_loyalty_lots_profile_id"), "loyalty_lots", ["profile_id"], unique=False)
    op.create_table(
        "loyalty_orders",
        sa.Column("order_id", sa.String(length=200), nullable=False),
        sa.Column("profile_id", sa.String(length=26), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("earned", sa.BigInteger(), nullable=False),
        sa.Column("reversed", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("order_id", name=op.f("pk_loyalty_orders")),
    )
    op.create_table(
        "loyalty_program",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("config", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loyalty_program")),
    )
    op.create_table(
        "loyalty_reward_claims",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("reward_id", sa.String(length=26), nullable=False),
        sa.Column("profile_id", sa.String(length=26), nullable=False),
        sa.Column("entry_id", sa.String(length=26), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("used_channel", sa.String(length=32), nullable=True),
        sa.Column("used_store_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loyalty_reward_claims")),
    )
    op.create_index(op.f("ix_loyalty_reward_claims_profile_id"), "loyalty_reward_claims", ["profile_id"], unique=False)
    op.create_table(
        "loyalty_rewards",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("cost_points", sa.BigInteger(), nullable=False),
        sa.Column("stock", sa.Integer(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loyalty_rewards")),
    )
    op.create_table(
        "offer_assignments",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("offer_id", sa.String(length=26), nullable=False),
        sa.Column("profile_id", sa.String(length=26), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=True),
        sa.Column("message_id", sa.String(length=64), nullable=True),
        sa.Column("delivery_channel", sa.String(length=32), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_offer_assignments")),
        sa.UniqueConstraint(
            "offer_id", "profile_id", "code", name=op.f("uq_offer_assignments_offer_id_profile_id_code")
        ),
    )
    op.create_index(op.f("ix_offer_assignments_profile_id"), "offer_assignments", ["profile_id"], unique=False)
    op.create_table(
        "offer_usage",
        sa.Column("offer_id", sa.String(length=26), nullable=False),
        sa.Column("profile_id", sa.String(length=26), nullable=False),
        sa.Column("uses", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("offer_id", "profile_id", name=op.f("pk_offer_usage")),
    )
    op.create_table(
        "offers",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("code_policy", sa.String(length=16), nullable=False),
        sa.Column("discount_kind", sa.String(length=16), nullable=False),
        sa.Column("discount_value", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("channels", sa.Text(), nullable=True),
        sa.Column("stores", sa.Text(), nullable=True),
        sa.Column("segments", sa.Text(), nullable=True),
        sa.Column("min_basket_minor", sa.BigInteger(), nullable=True),
        sa.Column("per_customer_limit", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_offers")),
    )


def downgrade() -> None:
    op.drop_table("offers")
    op.drop_table("offer_usage")
    op.drop_index(op.f("ix_offer_assignments_profile_id"), table_name="offer_assignments")
    op.drop_table("offer_assignments")
    op.drop_table("loyalty_rewards")
    op.drop_index(op.f("ix_loyalty_reward_claims_profile_id"), table_name="loyalty_reward_claims")
    op.drop_table("loyalty_reward_claims")
    op.drop_table("loyalty_program")
    op.drop_table("loyalty_orders")
    op.drop_index(op.f("ix_loyalty_lots_expires_at"), table_name="loyalty_lots")
    op.drop_index(op.f("ix_loyalty_lots_profile_id"), table_name="loyalty_lots")
    op.drop_table("loyalty_lots")
    op.drop_index(op.f("ix_loyalty_ledger_order_id"), table_name="loyalty_ledger")
    op.drop_index(op.f("ix_loyalty_ledger_profile_id"), table_name="loyalty_ledger")
    op.drop_table("loyalty_ledger")
    op.drop_table("loyalty_cursor")
    op.drop_table("loyalty_accounts")
    op.drop_index(op.f("ix_coupon_redemptions_offer_id"), table_name="coupon_redemptions")
    op.drop_table("coupon_redemptions")
    op.drop_index(op.f("ix_coupon_codes_offer_id"), table_name="coupon_codes")
    op.drop_table("coupon_codes")
