"""Messaging's record of who bought what (from order events) and templates' promoted items.

The table is filled by messaging's purchase listener: its cursor starts at zero, so the first slice the processor
loads after this upgrade reads every order event of the event store (or run `accord purchases rebuild`).

Revision ID: msg3
Revises: msg2
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "msg3"
down_revision = "msg2"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("msg_templates", sa.Column("promotes", sa.Text(), nullable=True))
    op.create_table(
        "msg_purchases",
        sa.Column("profile_id", sa.String(26), nullable=False),
        sa.Column("order_id", sa.String(200), nullable=False),
        sa.Column("sku", sa.String(200), nullable=False),
        sa.Column("category", sa.String(200), nullable=True),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("returned_quantity", sa.Integer(), nullable=False),
        sa.Column("purchased_at", TS, nullable=False),
        sa.Column("channel", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("profile_id", "order_id", "sku", name=op.f("pk_msg_purchases")),
    )
    op.create_index("ix_msg_purchases_sku_profile_id", "msg_purchases", ["sku", "profile_id"])
    op.create_index("ix_msg_purchases_category_profile_id", "msg_purchases", ["category", "profile_id"])
    op.create_table(
        "msg_purchase_returns",
        sa.Column("return_key", sa.String(420), nullable=False),
        sa.Column("profile_id", sa.String(26), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.PrimaryKeyConstraint("return_key", name=op.f("pk_msg_purchase_returns")),
    )
    op.create_index(op.f("ix_msg_purchase_returns_profile_id"), "msg_purchase_returns", ["profile_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_msg_purchase_returns_profile_id"), table_name="msg_purchase_returns")
    op.drop_table("msg_purchase_returns")
    op.drop_index("ix_msg_purchases_category_profile_id", table_name="msg_purchases")
    op.drop_index("ix_msg_purchases_sku_profile_id", table_name="msg_purchases")
    op.drop_table("msg_purchases")
    with op.batch_alter_table("msg_templates") as batch:
        batch.drop_column("promotes")
