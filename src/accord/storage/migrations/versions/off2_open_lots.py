"""Loyalty: a partial index of each profile's open lots in burn order (a burn's cost stops growing with the lots).

Revision ID: off2
Revises: off1
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "off2"
down_revision = "off1"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "loyalty_lots_open",
        "loyalty_lots",
        ["profile_id", "expires_at", "entry_id"],
        sqlite_where=sa.text("remaining > 0"),
        postgresql_where=sa.text("remaining > 0"),
    )


def downgrade() -> None:
    op.drop_index("loyalty_lots_open", table_name="loyalty_lots")
