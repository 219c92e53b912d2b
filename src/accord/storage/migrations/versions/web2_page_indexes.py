"""Web pages: indexes the pages read through (a profile's segments; a journey's instances by state).

Revision ID: web2
Revises: web1
Create Date: 2026-11-24
"""

from alembic import op

revision = "web2"
down_revision = "web1"
branch_labels = None
depends_on = ("seg1", "jrn1")  # the tables indexed here


def upgrade() -> None:
    # the profile page lists the segments of one profile: segment_members' key starts with the segment
    op.create_index("ix_segment_members_profile_id", "segment_members", ["profile_id"], unique=False)
    # the journeys list and a journey's flow count its instances by state, step and holdout
    op.create_index(
        "ix_journey_instances_journey_name_state", "journey_instances", ["journey_name", "state"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_journey_instances_journey_name_state", table_name="journey_instances")
    op.drop_index("ix_segment_members_profile_id", table_name="segment_members")
