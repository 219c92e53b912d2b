"""State-store tables of the segments domain: definitions, membership, its changes and sizes, cursors."""

import sqlalchemy as sa

from accord.storage import BigIntPK, UTCDateTime, metadata

# Saved segments and declared computed traits (kind = segment | trait), as the JSON they were written in.
segment_definitions = sa.Table(
    "segment_definitions",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("description", sa.Text(), nullable=False),
    sa.Column("definition", sa.Text(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

# Current members of each segment, with the time they entered.
segment_members = sa.Table(
    "segment_members",
    metadata,
    sa.Column("segment", sa.String(100), primary_key=True),
    sa.Column("profile_id", sa.String(26), primary_key=True),
    sa.Column("entered_at", UTCDateTime(), nullable=False),
    sa.Index("ix_segment_members_profile_id", "profile_id"),  # the segments of one profile (migration web2)
)

# Every entry and exit, in order: the feed journeys subscribe to (membership_changes_since).
segment_changes = sa.Table(
    "segment_changes",
    metadata,
    sa.Column("seq", BigIntPK, primary_key=True, autoincrement=True),
    sa.Column("segment", sa.String(100), nullable=False, index=True),
    sa.Column("profile_id", sa.String(26), nullable=False),
    sa.Column("change", sa.String(8), nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False),
)

# Size of each segment after each evaluation that changed it (and after every full evaluation).
segment_sizes = sa.Table(
    "segment_sizes",
    metadata,
    sa.Column("id", BigIntPK, primary_key=True, autoincrement=True),
    sa.Column("segment", sa.String(100), nullable=False, index=True),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("size", sa.BigInteger(), nullable=False),
)

# Small named values: the incremental evaluator's cursors, the RFM quintile cut points.
segment_state = sa.Table(
    "segment_state",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)
