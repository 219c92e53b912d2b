"""Data-subject erasure: the suppression list of erased identifiers (hashed) and the audit of privacy requests.

Revision ID: msg2
Revises: msg1
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "msg2"
down_revision = "msg1"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "erased_identifiers",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("id_type", sa.String(64), nullable=False),
        sa.Column("request_id", sa.String(26), nullable=False),
        sa.Column("erased_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_erased_identifiers")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_erased_identifiers_key_hash")),
    )
    op.create_table(
        "privacy_requests",
        sa.Column("id", sa.String(26), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("identifier_hash", sa.String(64), nullable=False),
        sa.Column("identifier_type", sa.String(64), nullable=False),
        sa.Column("requested_by", sa.String(200), nullable=False),
        sa.Column("requested_at", TS, nullable=False),
        sa.Column("completed_at", TS, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_requests")),
    )
    op.create_index(op.f("ix_privacy_requests_identifier_hash"), "privacy_requests", ["identifier_hash"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_privacy_requests_identifier_hash"), table_name="privacy_requests")
    op.drop_table("privacy_requests")
    op.drop_table("erased_identifiers")
