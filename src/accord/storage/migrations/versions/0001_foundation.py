"""Foundation schema: sources, ingest journal, rejects, identity graph.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "identifiers",
        sa.Column("key", sa.String(length=400), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=320), nullable=False),
        sa.Column("profile_id", sa.String(length=26), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_identifiers")),
    )
    op.create_index(op.f("ix_identifiers_profile_id"), "identifiers", ["profile_id"], unique=False)
    op.create_table(
        "identity_changes",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("identifier_key", sa.String(length=400), nullable=False),
        sa.Column("profile_id", sa.String(length=26), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_identity_changes")),
    )
    op.create_table(
        "identity_conflicts",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("identifier_key", sa.String(length=400), nullable=False),
        sa.Column("profile_ids", sa.Text(), nullable=False),
        sa.Column("message_id", sa.String(length=200), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="open", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_conflicts")),
    )
    op.create_index(
        op.f("ix_identity_conflicts_identifier_key"), "identity_conflicts", ["identifier_key"], unique=False
    )
    op.create_table(
        "identity_link_members",
        sa.Column("identifier_key", sa.String(length=400), nullable=False),
        sa.Column("link_key", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("identifier_key", "link_key", name=op.f("pk_identity_link_members")),
    )
    op.create_table(
        "identity_links",
        sa.Column("link_key", sa.String(length=64), nullable=False),
        sa.Column("identifiers", sa.Text(), nullable=False),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("first_message_id", sa.String(length=200), nullable=False),
        sa.Column("severed", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("rejected", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint("link_key", name=op.f("pk_identity_links")),
    )
    op.create_table(
        "identity_merges",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("from_profile", sa.String(length=26), nullable=False),
        sa.Column("into_profile", sa.String(length=26), nullable=False),
        sa.Column("identifiers", sa.Text(), nullable=False),
        sa.Column("message_id", sa.String(length=200), nullable=True),
        sa.Column("source_id", sa.String(length=26), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_merges")),
    )
    op.create_index(op.f("ix_identity_merges_from_profile"), "identity_merges", ["from_profile"], unique=False)
    op.create_index(op.f("ix_identity_merges_into_profile"), "identity_merges", ["into_profile"], unique=False)
    op.create_table(
        "ingest_rejects",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("source_id", sa.String(length=26), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ingest_rejects")),
    )
    op.create_table(
        "journal",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("source_id", sa.String(length=26), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("items", sa.Text(), nullable=False),
        sa.Column("n_items", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_journal")),
    )
    op.create_table(
        "message_ids",
        sa.Column("source_id", sa.String(length=26), nullable=False),
        sa.Column("message_id", sa.String(length=200), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source_id", "message_id", name=op.f("pk_message_ids")),
    )
    op.create_index(op.f("ix_message_ids_received_at"), "message_ids", ["received_at"], unique=False)
    op.create_table(
        "profiles",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("merged_into", sa.String(length=26), nullable=True),
        sa.Column("conflicted", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_profiles")),
    )
    op.create_table(
        "sources",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("write_key", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sources")),
        sa.UniqueConstraint("name", name=op.f("uq_sources_name")),
        sa.UniqueConstraint("write_key", name=op.f("uq_sources_write_key")),
    )


def downgrade() -> None:
    for table in (
        "identity_changes",
        "identity_conflicts",
        "identity_merges",
        "identity_link_members",
        "identity_links",
        "identifiers",
        "profiles",
        "ingest_rejects",
        "message_ids",
        "journal",
        "sources",
    ):
        op.drop_table(table)
