"""Journeys: versioned definitions, instances, transitions, actions, cursors.

Revision ID: jrn1
Revises: 0001
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "jrn1"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "journey_actions",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("instance_id", sa.String(length=26), nullable=False),
        sa.Column("step_id", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("queue", sa.String(length=32), nullable=True),
        sa.Column("store_id", sa.String(length=64), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journey_actions")),
        sa.UniqueConstraint("instance_id", "step_id", name=op.f("uq_journey_actions_instance_id_step_id")),
    )
    op.create_index(
        "ix_journey_actions_pending", "journey_actions", ["kind", "status", "next_attempt_at"], unique=False
    )
    op.create_table(
        "journey_cursors",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_journey_cursors")),
    )
    op.create_table(
        "journey_instances",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("journey_id", sa.String(length=26), nullable=False),
        sa.Column("journey_name", sa.String(length=100), nullable=False),
        sa.Column("profile_id", sa.String(length=26), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("step_id", sa.String(length=100), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("waiting_for", sa.String(length=200), nullable=True),
        sa.Column("holdout", sa.Boolean(), nullable=False),
        sa.Column("entered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("exit_reason", sa.String(length=200), nullable=True),
        sa.Column("converted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("entry_properties", sa.Text(), nullable=False),
        sa.Column("version_no", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journey_instances")),
    )
    op.create_index("ix_journey_instances_due", "journey_instances", ["state", "due_at"], unique=False)
    op.create_index(op.f("ix_journey_instances_journey_id"), "journey_instances", ["journey_id"], unique=False)
    op.create_index(
        "ix_journey_instances_profile", "journey_instances", ["profile_id", "journey_name", "state"], unique=False
    )
    op.create_table(
        "journey_transitions",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("instance_id", sa.String(length=26), nullable=False),
        sa.Column("journey_id", sa.String(length=26), nullable=False),
        sa.Column("step_id", sa.String(length=100), nullable=False),
        sa.Column("outcome", sa.String(length=200), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_journey_transitions")),
        sa.UniqueConstraint("instance_id", "step_id", name=op.f("uq_journey_transitions_instance_id_step_id")),
    )
    op.create_index("ix_journey_transitions_journey", "journey_transitions", ["journey_id", "step_id"], unique=False)
    op.create_table(
        "journeys",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("definition", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journeys")),
        sa.UniqueConstraint("name", "version", name=op.f("uq_journeys_name_version")),
    )


def downgrade() -> None:
    for table in ("journey_transitions", "journey_actions", "journey_instances", "journey_cursors", "journeys"):
        op.drop_table(table)
