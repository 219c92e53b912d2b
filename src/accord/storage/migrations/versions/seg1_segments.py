"""Segments: definitions, membership, membership changes, sizes, evaluator state.

Revision ID: seg1
Revises: 0001
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "seg1"
down_revision = "0001"
branch_labels = None
depends_on = None

_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "segment_definitions",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("definition", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", "kind", name=op.f("pk_segment_definitions")),
    )
    op.create_table(
        "segment_members",
        sa.Column("segment", sa.String(length=100), nullable=False),
        sa.Column("profile_id", sa.String(length=26), nullable=False),
        sa.Column("entered_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("segment", "profile_id", name=op.f("pk_segment_members")),
    )
    op.create_table(
        "segment_changes",
        sa.Column("seq", _PK, autoincrement=True, nullable=False),
        sa.Column("segment", sa.String(length=100), nullable=False),
        sa.Column("profile_id", sa.String(length=26), nullable=False),
        sa.Column("change", sa.String(length=8), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_segment_changes")),
    )
    op.create_index(op.f("ix_segment_changes_segment"), "segment_changes", ["segment"], unique=False)
    op.create_table(
        "segment_sizes",
        sa.Column("id", _PK, autoincrement=True, nullable=False),
        sa.Column("segment", sa.String(length=100), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segment_sizes")),
    )
    op.create_index(op.f("ix_segment_sizes_segment"), "segment_sizes", ["segment"], unique=False)
    op.create_table(
        "segment_state",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_segment_state")),
    )


def downgrade() -> None:
    op.drop_table("segment_state")
    op.drop_index(op.f("ix_segment_sizes_segment"), table_name="segment_sizes")
    op.drop_table("segment_sizes")
    op.drop_index(op.f("ix_segment_changes_segment"), table_name="segment_changes")
    op.drop_table("segment_changes")
    op.drop_table("segment_members")
    op.drop_table("segment_definitions")
