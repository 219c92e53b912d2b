"""Probabilistic identity matching: match runs (with their trained model) and the review queue.

Revision ID: mat1
Revises: 0001
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "mat1"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "identity_match_runs",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("event_seq", sa.BigInteger(), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("pairs", sa.Integer(), nullable=False),
        sa.Column("merged", sa.Integer(), nullable=False),
        sa.Column("queued", sa.Integer(), nullable=False),
        sa.Column("refused", sa.Integer(), nullable=False),
        sa.Column("merge_above", sa.Float(), nullable=False),
        sa.Column("review_above", sa.Float(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_match_runs")),
    )
    op.create_table(
        "identity_reviews",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_id", sa.String(length=26), nullable=False),
        sa.Column("pair_key", sa.String(length=64), nullable=False),
        sa.Column("identifier_a", sa.String(length=400), nullable=False),
        sa.Column("identifier_b", sa.String(length=400), nullable=False),
        sa.Column("profile_a", sa.String(length=26), nullable=False),
        sa.Column("profile_b", sa.String(length=26), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("agreeing", sa.Text(), nullable=False),
        sa.Column("records", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="open", nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_reviews")),
        sa.UniqueConstraint("pair_key", name=op.f("uq_identity_reviews_pair_key")),
    )
    op.create_index(op.f("ix_identity_reviews_status"), "identity_reviews", ["status"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_identity_reviews_status"), table_name="identity_reviews")
    op.drop_table("identity_reviews")
    op.drop_table("identity_match_runs")
