"""Analytics: imported ad spend per day, channel and campaign.

Revision ID: ana2
Revises: ana1
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "ana2"
down_revision = "ana1"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "analytics_ad_spend",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("campaign", sa.String(length=200), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("cost_minor", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("day", "channel", "campaign", name=op.f("pk_analytics_ad_spend")),
    )


def downgrade() -> None:
    op.drop_table("analytics_ad_spend")
