"""Analytics: computed customer scores per profile.

Revision ID: ana1
Revises: 0001
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "ana1"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "analytics_profile_scores",
        sa.Column("profile_id", sa.String(length=26), nullable=False),
        sa.Column("run_id", sa.String(length=26), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("p_alive", sa.Float(), nullable=True),
        sa.Column("churn_risk", sa.Float(), nullable=True),
        sa.Column("expected_purchases", sa.Float(), nullable=True),
        sa.Column("horizon_days", sa.Integer(), nullable=True),
        sa.Column("clv_minor", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("expected_next_purchase", sa.Date(), nullable=True),
        sa.Column("rfm_r", sa.SmallInteger(), nullable=True),
        sa.Column("rfm_f", sa.SmallInteger(), nullable=True),
        sa.Column("rfm_m", sa.SmallInteger(), nullable=True),
        sa.Column("rfm_segment", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("profile_id", name=op.f("pk_analytics_profile_scores")),
    )
    op.create_index(op.f("ix_analytics_profile_scores_run_id"), "analytics_profile_scores", ["run_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_analytics_profile_scores_run_id"), table_name="analytics_profile_scores")
    op.drop_table("analytics_profile_scores")
