"""Consent and messaging: consents, templates, providers, deliveries (decisions + outbox), broadcasts, suppressions.

Revision ID: msg1
Revises: 0001
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "msg1"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "consents",
        sa.Column("identifier_key", sa.String(400), nullable=False),
        sa.Column("purpose", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("legal_basis", sa.String(64), nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("identifier_key", "purpose", "channel", name=op.f("pk_consents")),
    )
    op.create_table(
        "msg_templates",
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("purpose", sa.String(64), nullable=False),
        sa.Column("tags", sa.Text(), nullable=False),
        sa.Column("default_locale", sa.String(35), nullable=False),
        sa.Column("variants", sa.Text(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_msg_templates")),
    )
    op.create_table(
        "msg_providers",
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("config", sa.Text(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("cost_minor", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_msg_providers")),
    )
    op.create_table(
        "msg_deliveries",
        sa.Column("id", sa.String(26), nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=False),
        sa.Column("profile_id", sa.String(26), nullable=False),
        sa.Column("broadcast_id", sa.String(26), nullable=True),
        sa.Column("template", sa.String(200), nullable=False),
        sa.Column("purpose", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("tags", sa.Text(), nullable=False),
        sa.Column("channel", sa.String(32), nullable=True),
        sa.Column("locale", sa.String(35), nullable=True),
        sa.Column("variant", sa.String(16), nullable=True),
        sa.Column("content", sa.Text(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("due_at", TS, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("claimed_until", TS, nullable=True),
        sa.Column("claimed_by", sa.String(26), nullable=True),
        sa.Column("provider", sa.String(200), nullable=True),
        sa.Column("provider_message_id", sa.String(200), nullable=True),
        sa.Column("sent_at", TS, nullable=True),
        sa.Column("delivered_at", TS, nullable=True),
        sa.Column("opened_at", TS, nullable=True),
        sa.Column("clicked_at", TS, nullable=True),
        sa.Column("read_at", TS, nullable=True),
        sa.Column("cost_minor", sa.Integer(), nullable=True),
        sa.Column("currency", sa.String(3), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_msg_deliveries")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_msg_deliveries_idempotency_key")),
    )
    op.create_index(op.f("ix_msg_deliveries_broadcast_id"), "msg_deliveries", ["broadcast_id"])
    op.create_index(op.f("ix_msg_deliveries_provider_message_id"), "msg_deliveries", ["provider_message_id"])
    op.create_index("ix_msg_deliveries_status_due_at", "msg_deliveries", ["status", "due_at"])
    op.create_index("ix_msg_deliveries_profile_id_due_at", "msg_deliveries", ["profile_id", "due_at"])
    op.create_table(
        "msg_broadcasts",
        sa.Column("id", sa.String(26), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("template", sa.String(200), nullable=False),
        sa.Column("spec", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("counts", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_msg_broadcasts")),
    )
    op.create_table(
        "msg_listener_cursors",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_msg_listener_cursors")),
    )
    op.create_table(
        "msg_suppressions",
        sa.Column("profile_id", sa.String(26), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("since", TS, nullable=False),
        sa.Column("until", TS, nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("profile_id", "reason", name=op.f("pk_msg_suppressions")),
    )


def downgrade() -> None:
    for name in (
        "msg_suppressions",
        "msg_listener_cursors",
        "msg_broadcasts",
        "msg_deliveries",
        "msg_providers",
        "msg_templates",
        "consents",
    ):
        op.drop_table(name)
