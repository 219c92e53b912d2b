"""State-store tables of the identity graph: profiles, identifiers, links, merges, conflicts, changes."""

import sqlalchemy as sa

from accord.storage import BigIntPK, UTCDateTime, metadata

profiles = sa.Table(
    "profiles",
    metadata,
    sa.Column("id", sa.String(26), primary_key=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("merged_into", sa.String(26), nullable=True),
    sa.Column("conflicted", sa.Boolean(), nullable=False, server_default=sa.false()),
)

# One row per known identifier ("type:value", normalised) and the profile it belongs to now.
identifiers = sa.Table(
    "identifiers",
    metadata,
    sa.Column("key", sa.String(400), primary_key=True),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("value", sa.String(320), nullable=False),
    sa.Column("profile_id", sa.String(26), nullable=False, index=True),
    sa.Column("first_seen_at", UTCDateTime(), nullable=False),
)

# Every distinct set of two or more identifiers seen together, with its earliest (time, message) key:
# the evidence from which the grouping is (re)computed in a way that does not depend on arrival order.
identity_links = sa.Table(
    "identity_links",
    metadata,
    sa.Column("link_key", sa.String(64), primary_key=True),
    sa.Column("identifiers", sa.Text(), nullable=False),
    sa.Column("first_at", UTCDateTime(), nullable=False),
    sa.Column("first_message_id", sa.String(200), nullable=False),
    sa.Column("severed", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("rejected", sa.Boolean(), nullable=False, server_default=sa.false()),
)

identity_link_members = sa.Table(
    "identity_link_members",
    metadata,
    sa.Column("identifier_key", sa.String(400), primary_key=True),
    sa.Column("link_key", sa.String(64), primary_key=True),
)

identity_merges = sa.Table(
    "identity_merges",
    metadata,
    sa.Column("id", sa.String(26), primary_key=True),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("from_profile", sa.String(26), nullable=False, index=True),
    sa.Column("into_profile", sa.String(26), nullable=False, index=True),
    sa.Column("identifiers", sa.Text(), nullable=False),
    sa.Column("message_id", sa.String(200), nullable=True),
    sa.Column("source_id", sa.String(26), nullable=True),
    sa.Column("reason", sa.Text(), nullable=False),
)

identity_conflicts = sa.Table(
    "identity_conflicts",
    metadata,
    sa.Column("id", sa.String(26), primary_key=True),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("identifier_key", sa.String(400), nullable=False, index=True),
    sa.Column("profile_ids", sa.Text(), nullable=False),
    sa.Column("message_id", sa.String(200), nullable=True),
    sa.Column("detail", sa.Text(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, server_default="open"),
)

# Outbox of identifier -> profile reassignments, applied in order to the event store's profile column.
identity_changes = sa.Table(
    "identity_changes",
    metadata,
    sa.Column("seq", BigIntPK, primary_key=True, autoincrement=True),
    sa.Column("identifier_key", sa.String(400), nullable=False),
    sa.Column("profile_id", sa.String(26), nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False),
)
